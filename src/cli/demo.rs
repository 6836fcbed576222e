//! `hubspot-sync demo`: the whole product on one machine with one command. A private PostgreSQL
//! under `./.hubspot-sync/` (always: `DATABASE_URL` is never used, so the demo cannot touch a
//! database it did not create), the migrations, an in-process `hubspot-sim` that changes records
//! at a steady rate and delivers signed webhooks for them, and `serve` against both. Two HubSpot
//! accounts are simulated: the default one (portal [`DEFAULT_PORTAL`]) and a second one
//! ([`SECOND_PORTAL`], its own simulator with its own data, webhook secret and budget), added
//! to the accounts table, so the demo shows one copy of two accounts.
//!
//! Every start is fresh: the private cluster is deleted and created again and the simulator is
//! seeded the same way, so the copy and the simulator agree from the first run (a kept database
//! next to a re-seeded simulator would disagree for good). The admin token is kept in the demo's
//! directory so bookmarks and scripts keep working across restarts.
//!
//! Ctrl-C, SIGTERM and SIGHUP (the terminal closed) all stop `serve` (which drains its queue),
//! then the simulator, then PostgreSQL, which is stopped by its pid: a second demo started in
//! the same directory is refused before it touches anything, and leaves the first one running.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hubspot_sim::{Sim, SimHandle, SimOptions, WebhookConfig};
use tokio_util::sync::CancellationToken;

use super::error::{self, CliError};
use super::serve::ServeArgs;
use crate::config::{
    ApiVersion, DatabaseSettings, HubSpotSettings, OwnerSettings, PollingSettings, RequireV3, RetentionSettings,
    ScheduleSettings, Secret, SecretList, ServerSettings, WebhookSettings,
};
use crate::localpg::{LocalPgOptions, LocalPostgres};
use crate::runtime::{self, RunningServer};
use crate::store::migrations;

/// The default simulated account's portal id (the simulator's own).
pub const DEFAULT_PORTAL: i64 = 62515;
/// The second simulated account's portal id.
pub const SECOND_PORTAL: i64 = 62516;
/// The second account's name in the accounts table.
pub const SECOND_NAME: &str = "demo-second";
/// The variables the second account names for its token and client secret; the demo gives
/// their values in code (`config::Environment`), nobody sets them.
const SECOND_TOKEN_ENV: &str = "DEMO_SECOND_ACCESS_TOKEN";
const SECOND_SECRET_ENV: &str = "DEMO_SECOND_CLIENT_SECRET";

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Changes per second the bundled simulator makes (each delivered as a signed webhook).
    #[arg(long, env = "DEMO_CHURN_PER_S", value_name = "DEMO_CHURN_PER_S", default_value_t = 2.0)]
    pub churn_per_s: f64,
    /// Contacts in the simulated account (deals, calls and owners scale with it).
    #[arg(long, env = "DEMO_CONTACTS", value_name = "DEMO_CONTACTS", default_value_t = 2_000)]
    pub contacts: usize,
    /// The demo's own directory: its private PostgreSQL (`postgres/`, created afresh on every
    /// start), its admin token and its lock. DATABASE_URL is never used by the demo.
    #[arg(long, env = "DEMO_DIR", value_name = "DEMO_DIR", default_value = ".hubspot-sync")]
    pub dir: PathBuf,
    /// Secret the bundled simulator signs its webhooks with and the demo checks them against
    /// (HubSpot's app client secret). Random on every start when unset; the banner shows it, so
    /// you can sign webhooks of your own.
    #[arg(long, env = "HUBSPOT_CLIENT_SECRET", value_name = "HUBSPOT_CLIENT_SECRET", hide_env_values = true)]
    pub hubspot_client_secret: Option<Secret>,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub schedules: ScheduleSettings,
    #[command(flatten)]
    pub owners: OwnerSettings,
    #[command(flatten)]
    pub retention: RetentionSettings,
}

/// Where the demo keeps things, and the lock that says it is running.
struct DemoDir {
    dir: PathBuf,
    lock: PathBuf,
}

pub async fn run(args: DemoArgs) -> Result<ExitCode, CliError> {
    // From here on a hang-up or an interrupt asks for the clean shutdown below, whatever the
    // demo is doing (without a handler, SIGHUP would end the process on the spot).
    let stop = CancellationToken::new();
    spawn_signal_watch(stop.clone());

    let demo_dir = DemoDir::lock(&args.dir)?;
    let outcome = run_locked(args, &demo_dir, &stop).await;
    demo_dir.unlock();
    outcome
}

async fn run_locked(mut args: DemoArgs, demo_dir: &DemoDir, stop: &CancellationToken) -> Result<ExitCode, CliError> {
    if args.server.port == 0 {
        args.server.port = free_port(args.server.bind)?;
    }
    check_port_free(args.server.bind, args.server.port, "PORT")?;
    check_port_free(args.server.bind, args.server.metrics_port, "METRICS_PORT")?;
    if std::env::var_os("DATABASE_URL").is_some() {
        say("note: DATABASE_URL is set and ignored: the demo always runs on a private PostgreSQL of its own, \
             so it never writes to a database it did not create");
    }
    let admin_token = match args.server.admin_token.take() {
        Some(token) => token,
        None => Secret::new(demo_dir.admin_token()?),
    };
    args.server.admin_token = Some(admin_token);

    let postgres = start_postgres(demo_dir.dir.join("postgres")).await?;
    let outcome = run_with_postgres(&args, &postgres, stop).await;
    postgres.stop().await;
    outcome
}

async fn run_with_postgres(
    args: &DemoArgs,
    postgres: &LocalPostgres,
    stop: &CancellationToken,
) -> Result<ExitCode, CliError> {
    let database_url = postgres.url();
    let target = crate::store::connect::DbTarget::parse(&database_url, None)
        .context("the private PostgreSQL's URL is unusable")?;
    migrations::run_pending(&target).await.context("cannot apply the migrations to the private PostgreSQL")?;

    let client_secret = match &args.hubspot_client_secret {
        Some(secret) => secret.expose().to_owned(),
        None => random_token(),
    };
    let second_secret = random_token();
    let sim = start_sim(args, &client_secret, Second::No).await?;
    let second = match start_sim(args, &second_secret, Second::Yes).await {
        Ok(second) => second,
        Err(e) => {
            sim.shutdown().await;
            return Err(e.into());
        }
    };
    let started = async {
        add_second_account(&target, &second).await?;
        let mut serve = serve_args(args, &sim, &database_url, &client_secret)?;
        serve.env = crate::config::Environment::default()
            .with(SECOND_TOKEN_ENV, Secret::new("demo-token-second"))
            .with(SECOND_SECRET_ENV, Secret::new(second_secret.clone()));
        serve.options().and_then(|options| {
            runtime::start(options).map_err(|e| error::port_in_use(e, args.server.bind, args.server.port, "PORT"))
        })
    };
    let server = match started.await {
        Ok(server) => server,
        Err(e) => {
            sim.shutdown().await;
            second.shutdown().await;
            return Err(e);
        }
    };
    print_banner(args, &server, (&sim, &second), postgres, (&client_secret, &second_secret));

    let token = server.shutdown_token();
    let watched = stop.clone();
    tokio::spawn(async move {
        watched.cancelled().await;
        token.cancel();
    });
    let outcome = server.wait().await;
    sim.shutdown().await;
    second.shutdown().await;
    match outcome {
        Ok(()) => {
            say("demo stopped; its PostgreSQL is stopping");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

/// Cancels `stop` on SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal was closed).
fn spawn_signal_watch(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (term, hup) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()));
    tokio::spawn(async move {
        let (mut term, mut hup) = match (term, hup) {
            (Ok(term), Ok(hup)) => (term, hup),
            _ => {
                tracing::warn!("cannot watch SIGTERM/SIGHUP; only Ctrl-C stops the demo cleanly");
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = hup.recv() => tracing::info!("SIGHUP received (terminal closed)"),
        }
        stop.cancel();
    });
}

impl DemoDir {
    /// Creates the directory and takes its lock (`demo.pid`, holding this process's pid); a lock
    /// held by a live demo is refused with what to do, one left by a dead process is taken over.
    fn lock(dir: &Path) -> Result<DemoDir, CliError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the demo's directory {}", dir.display()))?;
        let lock = dir.join("demo.pid");
        for _ in 0..3 {
            let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&lock);
            match created {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id())
                        .with_context(|| format!("cannot write {}", lock.display()))?;
                    return Ok(DemoDir { dir, lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&lock).ok().and_then(|t| t.trim().parse::<u32>().ok());
                    if let Some(pid) = holder.filter(|pid| is_demo_process(*pid)) {
                        return Err(anyhow::anyhow!(
                            "another hubspot-sync demo (pid {pid}) is running from {}; it is left alone. Use that \
                             one, stop it with Ctrl-C in its terminal (or `kill {pid}`), or start this one in \
                             another directory with --dir (DEMO_DIR)",
                            dir.display()
                        )
                        .into());
                    }
                    // Left by a demo that was killed: nobody holds it.
                    let _ = std::fs::remove_file(&lock);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("cannot create {}", lock.display())).into());
                }
            }
        }
        Err(anyhow::anyhow!("cannot take the lock {}; delete it if no demo is running", lock.display()).into())
    }

    fn unlock(&self) {
        let _ = std::fs::remove_file(&self.lock);
    }

    /// The admin token kept in `admin-token` (mode 0600), created on first use.
    fn admin_token(&self) -> anyhow::Result<String> {
        let path = self.dir.join("admin-token");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let token = text.trim();
            if !token.is_empty() {
                return Ok(token.to_owned());
            }
        }
        let token = random_token();
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)
        }
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
        writeln!(file, "{token}").with_context(|| format!("cannot write the admin token to {}", path.display()))?;
        Ok(token)
    }
}

/// Whether `pid` is a live `hubspot-sync` process other than this one.
fn is_demo_process(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
    comm.trim().starts_with("hubspot-sync") && !zombie
}

fn free_port(bind: IpAddr) -> Result<u16, CliError> {
    let listener = TcpListener::bind(SocketAddr::new(bind, 0)).context("cannot find a free port")?;
    Ok(listener.local_addr().context("cannot find a free port")?.port())
}

/// Fails early, naming the setting, when a port is taken (the real bind happens later).
fn check_port_free(bind: IpAddr, port: u16, var: &'static str) -> Result<(), CliError> {
    match TcpListener::bind(SocketAddr::new(bind, port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(error::port_in_use(anyhow::Error::new(e), bind, port, var)),
    }
}

async fn start_postgres(data_dir: PathBuf) -> anyhow::Result<LocalPostgres> {
    say(&format!("starting a fresh private PostgreSQL in {} ...", data_dir.display()));
    let options = LocalPgOptions { data_dir: Some(data_dir), fresh: true, ..Default::default() };
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::start(options))
        .await
        .context("the PostgreSQL starter panicked")?
        .context("cannot start the demo's private PostgreSQL")?;
    Ok(pg)
}

/// Which simulated account a simulator plays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Second {
    No,
    Yes,
}

/// The simulator of the default account, or of the second one (half the records, seeded
/// differently, its own portal id on its webhooks).
async fn start_sim(args: &DemoArgs, client_secret: &str, second: Second) -> anyhow::Result<SimHandle> {
    let webhook_url = format!("http://127.0.0.1:{}/webhooks/hubspot", args.server.port);
    let contacts = args.contacts.max(10);
    let contacts = if second == Second::Yes { (contacts / 2).max(10) } else { contacts };
    let mut webhook = WebhookConfig::new(webhook_url, client_secret);
    webhook.portal_id = if second == Second::Yes { SECOND_PORTAL } else { DEFAULT_PORTAL } as u64;
    let options = SimOptions {
        contacts,
        deals: contacts / 3,
        calls: contacts,
        owners: 20,
        seed: if second == Second::Yes { 4242 } else { SimOptions::default().seed },
        requests_per_10s: 0,
        churn_per_s: args.churn_per_s.max(0.0),
        webhook: Some(webhook),
        ..Default::default()
    };
    Sim::start(options).await.context("cannot start the HubSpot simulator")
}

/// The default account takes its portal id, and the second account is added (its token and
/// secret named by variables the demo gives in code, its API the second simulator's).
async fn add_second_account(target: &crate::store::connect::DbTarget, second: &SimHandle) -> Result<(), CliError> {
    let mut conn = target.connect("hubspot-sync demo").await.context("cannot connect to the private PostgreSQL")?;
    super::migrate::adopt_portal(&mut conn, DEFAULT_PORTAL).await?;
    let account = crate::store::accounts::NewAccount {
        portal_id: SECOND_PORTAL,
        name: SECOND_NAME.into(),
        token_env: SECOND_TOKEN_ENV.into(),
        client_secret_env: Some(SECOND_SECRET_ENV.into()),
        api_base: Some(second.url().to_owned()),
        requests_per_10s: Some(100),
        schedule_incremental: None,
        schedule_full: None,
    };
    crate::store::accounts::add(&mut conn, account).await.map_err(anyhow::Error::from)?;
    Ok(())
}

/// `serve`'s settings: the private database, the simulator as HubSpot, its webhook secret.
fn serve_args(args: &DemoArgs, sim: &SimHandle, database_url: &str, client_secret: &str) -> anyhow::Result<ServeArgs> {
    Ok(ServeArgs {
        database: DatabaseSettings {
            database_url: Some(Secret::new(database_url)),
            database_ca_cert: None,
            database_pool_size: 10,
            database_pool_timeout: Duration::from_secs(5),
            database_statement_timeout: Duration::from_secs(30),
            database_synchronous_commit: false,
        },
        hubspot: HubSpotSettings {
            hubspot_access_token: Some(Secret::new("demo-token")),
            hubspot_api_base: sim.url().parse().context("the simulator's URL")?,
            hubspot_api_version: ApiVersion::V3,
            hubspot_requests_per_10s: 100,
            hubspot_searches_in_budget: true,
        },
        webhooks: WebhookSettings {
            hubspot_client_secret: Some(client_secret.parse::<SecretList>().map_err(anyhow::Error::msg)?),
            hubspot_require_v3: RequireV3::Auto,
            public_url: None,
            webhook_unknown_portal: "accept".into(),
        },
        server: args.server.clone(),
        schedules: args.schedules.clone(),
        owners: args.owners.clone(),
        polling: PollingSettings::default(),
        retention: args.retention.clone(),
        copy: crate::config::CopySettings::default(),
        portal: crate::config::PortalSettings { hubspot_portal_id: Some(DEFAULT_PORTAL) },
        cluster: crate::config::ClusterSettings::default(),
        account_pool_size: crate::runtime::accounts::DEFAULT_ACCOUNT_POOL_SIZE,
        env: crate::config::Environment::default(),
    })
}

fn print_banner(
    args: &DemoArgs,
    server: &RunningServer,
    (sim, second): (&SimHandle, &SimHandle),
    postgres: &LocalPostgres,
    (client_secret, second_secret): (&str, &str),
) {
    let admin = args.server.admin_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
    let page = local_url(server.addr);
    let metrics = match server.metrics_addr {
        Some(addr) => format!("{}metrics  (listening on {addr})", local_url(addr)),
        None => format!("not served: METRICS_PORT {} could not be bound (see the log)", args.server.metrics_port),
    };
    let pid = postgres.pid().map(|p| format!(", pid {p}")).unwrap_or_default();
    let banner = format!(
        "\nhubspot-sync demo is running\n  status page:    {page}  (listening on {})\n  admin token:    {admin}  \
         (for the force-sync buttons; kept in {})\n  metrics:        {metrics}\n  \
         accounts:       2 simulated HubSpot accounts in one copy: default (portal {DEFAULT_PORTAL}) and \
         {SECOND_NAME} (portal {SECOND_PORTAL})\n  \
         simulator:      {}  (the default account, portal {DEFAULT_PORTAL})\n  \
         webhook secret: {client_secret}  (the simulator signs its webhooks with it)\n  \
         simulator 2:    {}  (account {SECOND_NAME}, portal {SECOND_PORTAL}: its own data and budget; \
         force sync it with ?account={SECOND_PORTAL})\n  \
         webhook secret 2: {second_secret}  (the second simulator signs its webhooks with it)\n  \
         database:       {}  \
         (the demo's own PostgreSQL{pid}, data in {}, created afresh on every start; DATABASE_URL is not used)\n\
         Press Ctrl-C to stop.\n",
        server.addr,
        args.dir.join("admin-token").display(),
        sim.url(),
        second.url(),
        postgres.url(),
        postgres.data_dir().display(),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes());
    let _ = out.flush();
}

/// `http://127.0.0.1:PORT/` for a wildcard or loopback address, else the address itself.
fn local_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    format!("http://{host}:{}/", addr.port())
}

/// A line on stderr; nothing happens when the terminal is gone (after SIGHUP).
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
