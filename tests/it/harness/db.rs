//! Throwaway databases for tests, cloned from a migrated template.
//!
//! The server is `TEST_DATABASE_URL`, else `DATABASE_URL`, else a private PostgreSQL started
//! from the installed binaries in a temporary directory for this test process (it stops when the
//! process ends). Once per process, a template database named after a
//! hash of `migrations/` is created and migrated (under an advisory lock, so parallel test
//! processes agree); each test then gets `CREATE DATABASE ... TEMPLATE` and drops it in `Drop`.
//! Databases left by crashed runs are swept when they are over an hour old.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel_async::AsyncPgConnection;
use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres};
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::migrations;
use tokio::sync::OnceCell;

/// Advisory lock taken while the template is built or cloned.
const TEMPLATE_LOCK: i64 = 0x6873_7465_6d70_6c74;
const PREFIX: &str = "hstest_";

struct Server {
    admin: DbTarget,
    admin_url: String,
    template: String,
    _local: Option<LocalPostgres>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// A database of its own for one test; dropped with it.
pub struct TestDb {
    pub target: DbTarget,
    admin: DbTarget,
    name: String,
    url: String,
    /// The HubSpot portal whose rows the comparisons read (`None`: the default account's).
    portal: std::sync::Mutex<Option<i64>>,
}

impl TestDb {
    /// A fresh, fully migrated database.
    pub async fn new() -> TestDb {
        let server = SERVER.get_or_init(init_server).await;
        Self::create(server, &server.template).await
    }

    /// A fresh database with no migrations applied.
    pub async fn empty() -> TestDb {
        let server = SERVER.get_or_init(init_server).await;
        Self::create(server, "template0").await
    }

    async fn create(server: &Server, template: &str) -> TestDb {
        let name = format!("{PREFIX}{}_{}", now_secs(), uuid::Uuid::new_v4().simple());
        let admin = server.admin.connect_raw("hubspot-sync tests").await.expect("connect to the test server");
        admin.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await.expect("lock");
        let created = admin.batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).await;
        admin.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await.expect("unlock");
        created.expect("clone the template database");
        let mut url = url::Url::parse(&server.admin_url).expect("admin url");
        url.set_path(&format!("/{name}"));
        TestDb {
            target: server.admin.with_database(&name),
            admin: server.admin.clone(),
            name,
            url: url.into(),
            portal: std::sync::Mutex::new(None),
        }
    }

    /// A new diesel connection to this database.
    pub async fn conn(&self) -> AsyncPgConnection {
        self.target.connect("hubspot-sync tests").await.expect("connect to the test database")
    }

    /// A connection pool to this database, as the poller tests use it (8 connections).
    pub fn pool(&self) -> hubspot_sync::store::Pool {
        self.pool_at(&self.target)
    }

    /// A pool like [`TestDb::pool`]'s to `target` (this database reached another way, say
    /// through a [`super::Proxy`]).
    pub fn pool_at(&self, target: &hubspot_sync::store::connect::DbTarget) -> hubspot_sync::store::Pool {
        let options = hubspot_sync::store::pool::PoolOptions {
            application_name: "hubspot-sync poller tests".into(),
            max_size: 8,
            wait_timeout: std::time::Duration::from_secs(10),
            statement_timeout: std::time::Duration::from_secs(30),
            synchronous_commit: false,
        };
        hubspot_sync::store::build_pool(target, &options).expect("a pool to the test database")
    }

    /// The number in the first column of the first row of `sql`.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.expect("a count").get(0)
    }

    /// A new plain tokio-postgres client to this database, working for the portal set with
    /// [`TestDb::read_portal`] (`hubspot_sync_portal()`), if any.
    pub async fn client(&self) -> tokio_postgres::Client {
        let client = self.target.connect_raw("hubspot-sync tests").await.expect("connect to the test database");
        let portal = *self.portal.lock().expect("portal lock");
        if let Some(portal) = portal {
            client
                .batch_execute(&hubspot_sync::store::accounts::session_setting(portal))
                .await
                .expect("select the portal");
        }
        client
    }

    /// Makes the comparisons (`compare`) read `portal`'s rows (`None`: the default account's).
    pub fn read_portal(&self, portal: Option<i64>) {
        *self.portal.lock().expect("portal lock") = portal;
    }

    /// The URL of this database, for the binary's `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Where the PostgreSQL server of this database listens (to put a [`super::Proxy`] before it).
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = url::Url::parse(&self.url).expect("database url");
        let host = url.host_str().expect("database host");
        let port = url.port().unwrap_or(5432);
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).expect("resolve").next().expect("an address")
    }

    /// The URL of this database reached through `proxy` instead of directly.
    pub fn url_through(&self, proxy: std::net::SocketAddr) -> String {
        let mut url = url::Url::parse(&self.url).expect("database url");
        url.set_host(Some(&proxy.ip().to_string())).expect("host");
        url.set_port(Some(proxy.port())).expect("port");
        url.into()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread does the work.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let client = admin.connect_raw("hubspot-sync tests").await.ok()?;
                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}; it will be swept later", self.name);
        }
    }
}

async fn init_server() -> Server {
    let (admin_url, local) = match std::env::var("TEST_DATABASE_URL").or_else(|_| std::env::var("DATABASE_URL")) {
        Ok(url) => (url, None),
        Err(_) => {
            // A private cluster for this test process; its watchdog stops it when the process ends.
            let local = tokio::task::spawn_blocking(|| LocalPostgres::start(LocalPgOptions::default()))
                .await
                .expect("start task")
                .expect(
                    "start a private PostgreSQL for the tests (install Debian's postgresql, or set TEST_DATABASE_URL)",
                );
            (local.url(), Some(local))
        }
    };
    let admin = DbTarget::parse(&admin_url, None).expect("TEST_DATABASE_URL is a valid PostgreSQL URL");
    let template = format!("hstpl_{}", migrations_hash());
    let client = admin.connect_raw("hubspot-sync tests").await.expect("connect to the test server");
    client.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await.expect("lock");
    sweep_leftovers(&client).await;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .expect("look up the template")
        .is_some();
    if !exists {
        let building = format!("{template}_building");
        client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).await.expect("drop");
        client.batch_execute(&format!("CREATE DATABASE \"{building}\"")).await.expect("create template");
        migrations::run_pending(&admin.with_database(&building)).await.expect("migrate the template");
        client.batch_execute(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\"")).await.expect("rename");
    }
    client.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await.expect("unlock");
    Server { admin, admin_url, template, _local: local }
}

/// Drops test databases over an hour old (left by crashed or killed runs).
async fn sweep_leftovers(client: &tokio_postgres::Client) {
    let rows = client
        .query("SELECT datname FROM pg_database WHERE datname LIKE $1", &[&format!("{PREFIX}%")])
        .await
        .expect("list test databases");
    for row in rows {
        let name: String = row.get(0);
        let born = name.trim_start_matches(PREFIX).split('_').next().and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| b + 3600 < now_secs()) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
}

fn migrations_hash() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read migrations/")
        .flat_map(|e| {
            let path = e.expect("entry").path();
            vec![path.join("up.sql"), path.join("down.sql")]
        })
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        file.parent().and_then(|p| p.file_name()).hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
