//! Where the database is and how to reach it safely: [`DbTarget`] parses `DATABASE_URL` (plus
//! `DATABASE_CA_CERT`) once at start-up and opens connections with the TLS that the URL's libpq
//! `sslmode` asks for.
//!
//! tokio-postgres only understands `sslmode` `disable`/`prefer`/`require`, so `sslmode` and
//! `sslrootcert` are taken out of the URL here and the five libpq modes are implemented with
//! rustls (see [`tls`]): `disable` (no TLS), `prefer` (TLS when offered, certificate not checked,
//! the default), `require` (TLS, certificate not checked; but with a CA file, as libpq does, the
//! chain is checked against it: `verify-ca`), `verify-ca` (chain checked against
//! `DATABASE_CA_CERT`, else the public roots) and `verify-full` (chain and host name checked).
//! `sslrootcert=system` means the public roots and, as in libpq, `verify-full` only.
//! Supabase's transaction pooler (port 6543) breaks prepared statements and is refused.

mod mode;
mod tls;

pub use mode::{DbUrlError, SslMode};

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{Client, Connection, NoTls, Socket, config::Host};
use tokio_postgres_rustls::MakeRustlsConnect;
use url::Url;

/// Supabase's transaction pooler port (PgBouncer/Supavisor in transaction mode).
const TRANSACTION_POOLER_PORT: u16 = 6543;
/// Used when the URL sets no `connect_timeout`, so an unreachable server fails instead of hanging.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// TCP keepalives on every connection, at both ends (this client's socket here, PostgreSQL's
/// through `store::pool`'s session settings): a probe after this much silence...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...then one every this long...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and the connection is dropped after this many unanswered probes.
pub const KEEPALIVE_PROBES: u32 = 3;
/// How long a peer that vanished (a dead machine, a network that drops packets without a reset)
/// keeps a connection: the keepalives above, and the TCP user timeout for data sent and never
/// acknowledged. PostgreSQL then ends that session, so its advisory locks (the leader's, a run's)
/// are free within about a minute instead of the kernel's default two hours.
pub const DEAD_PEER_AFTER: Duration = Duration::from_secs(60);

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "could not verify the server certificate of the database at {server}: {reason}; to fix \
         it, {remedy}"
    )]
    Certificate { server: String, reason: String, remedy: String },
    /// `detail` is the whole error chain: tokio-postgres' own message omits the cause.
    #[error("could not connect to the database at {target}: {detail}")]
    Postgres { target: String, detail: String, error: tokio_postgres::Error },
}

impl ConnectError {
    /// The underlying tokio-postgres error (for its SQLSTATE), unless TLS verification failed.
    pub fn postgres_error(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ConnectError::Postgres { error, .. } => Some(error),
            ConnectError::Certificate { .. } => None,
        }
    }
}

/// A parsed, validated `DATABASE_URL`: where the server is, which database, and the TLS to use.
#[derive(Clone)]
pub struct DbTarget {
    /// The URL without `sslmode`/`sslrootcert`; never logged as is (it may hold a password).
    url: Url,
    config: tokio_postgres::Config,
    /// The mode in force ([`SslMode::in_force`]).
    ssl_mode: SslMode,
    /// `sslmode=require` was asked for and a CA file turned it into `verify-ca`.
    require_with_ca: bool,
    ca_file: Option<PathBuf>,
    tls: Option<MakeRustlsConnect>,
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTarget")
            .field("url", &self.redacted())
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl DbTarget {
    /// Parses `DATABASE_URL`; `ca_cert` is `DATABASE_CA_CERT` (the URL's `sslrootcert` is used
    /// when it is `None`). The CA file is read and checked now, so a bad file fails at start-up.
    pub fn parse(database_url: &str, ca_cert: Option<&Path>) -> Result<DbTarget, DbUrlError> {
        let (cleaned, asked_mode, root_cert) = strip_ssl_params(database_url)?;
        let system_roots = root_cert.as_deref() == Some("system");
        let ssl_mode = match asked_mode {
            // libpq: `sslrootcert=system` defaults to `verify-full` and refuses any weaker mode.
            None if system_roots => SslMode::VerifyFull,
            Some(mode) if system_roots && mode != SslMode::VerifyFull => {
                return Err(DbUrlError::WeakModeWithSystemRoots(mode));
            }
            asked => asked.unwrap_or_default(),
        };
        let url = Url::parse(&cleaned).map_err(|e| DbUrlError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(DbUrlError::Invalid(format!(
                "the scheme must be postgres:// or postgresql://, not {}://",
                url.scheme()
            )));
        }
        let mut config = tokio_postgres::Config::from_str(&cleaned).map_err(|e| DbUrlError::Invalid(e.to_string()))?;
        if config.get_ports().contains(&TRANSACTION_POOLER_PORT) {
            return Err(DbUrlError::TransactionPooler);
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        keep_alive(&mut config, &url);
        // libpq's `sslrootcert=system` means the public roots, like no CA file at all.
        let ca_file = ca_cert.map(Path::to_path_buf).or_else(|| root_cert.filter(|v| v != "system").map(PathBuf::from));
        let roots = match &ca_file {
            Some(path) => tls::load_ca(path)?,
            None => tls::Roots::Public,
        };
        // `require` with a CA file verifies the chain, as libpq does (see `SslMode::in_force`).
        let require_with_ca = ssl_mode == SslMode::Require && ca_file.is_some();
        let ssl_mode = ssl_mode.in_force(ca_file.is_some());
        let tls = tls::make_tls(ssl_mode, &roots)?;
        Ok(DbTarget { url, config, ssl_mode, require_with_ca, ca_file, tls })
    }

    /// The `sslmode` in force: `verify-ca` for `require` with a CA file.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The URL with any password replaced by `***`, plus the `sslmode` in force: safe to log.
    pub fn redacted(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one evidently can.
            let _ = url.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| match k.as_ref() {
                "password" => (k.into_owned(), "***".to_owned()),
                _ => (k.into_owned(), v.into_owned()),
            })
            .chain([("sslmode".to_owned(), self.ssl_mode.to_string())])
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    }

    /// The same server and settings, another database (the test harness clones databases).
    pub fn with_database(&self, dbname: &str) -> DbTarget {
        let mut target = self.clone();
        target.config.dbname(dbname);
        target.url.set_path(&format!("/{dbname}"));
        target
    }

    /// The database name (libpq's default, the user name, when the URL names none).
    pub fn database(&self) -> &str {
        self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres")
    }

    /// Opens a plain tokio-postgres client; its connection is driven by a spawned task.
    pub async fn connect_raw(&self, application_name: &str) -> Result<Client, ConnectError> {
        let config = self.session_config(application_name);
        let target = self.redacted();
        match &self.tls {
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(|e| self.error(e))?;
                tokio::spawn(drive(connection, target));
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(|e| self.error(e))?;
                tokio::spawn(drive(connection, target));
                Ok(client)
            }
        }
    }

    /// Opens a plain client whose asynchronous messages (`NOTIFY` notifications, notices) go to
    /// the returned channel, which closes when the connection ends (for `LISTEN`).
    pub async fn connect_with_messages(
        &self,
        application_name: &str,
    ) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::AsyncMessage>), ConnectError> {
        let config = self.session_config(application_name);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let target = self.redacted();
        let client = match &self.tls {
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(|e| self.error(e))?;
                tokio::spawn(forward_messages(connection, tx, target));
                client
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(|e| self.error(e))?;
                tokio::spawn(forward_messages(connection, tx, target));
                client
            }
        };
        Ok((client, rx))
    }

    /// Opens a diesel-async connection over the TLS this target asks for.
    pub async fn connect(&self, application_name: &str) -> ConnectionResult<AsyncPgConnection> {
        let config = self.session_config(application_name);
        let bad = |e| ConnectionError::BadConnection(self.error(e).to_string());
        match &self.tls {
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
    }

    fn session_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        config.application_name(application_name);
        config
    }

    /// `host:port` of the first server, for messages.
    fn server(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    fn error(&self, error: tokio_postgres::Error) -> ConnectError {
        match tls::certificate_error(&error) {
            Some(cert) => {
                let (reason, mut remedy) = tls::explain(cert, self.ca_file.as_deref());
                if self.require_with_ca {
                    remedy.push_str(
                        " (sslmode=require checks the certificate against DATABASE_CA_CERT when it is \
                         set, as libpq does)",
                    );
                }
                ConnectError::Certificate { server: self.server(), reason, remedy }
            }
            None => ConnectError::Postgres { target: self.redacted(), detail: error_chain(&error), error },
        }
    }
}

/// Sets [`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`] and [`DEAD_PEER_AFTER`]
/// as this client's TCP keepalives and user timeout, except those the URL sets itself. The URL's
/// `tcp_user_timeout` is in milliseconds, as in libpq (tokio-postgres would read seconds).
fn keep_alive(config: &mut tokio_postgres::Config, url: &Url) {
    let given = |key: &str| url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
    if given("keepalives_idle").is_none() {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if given("keepalives_interval").is_none() {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if given("keepalives_retries").is_none() {
        config.keepalives_retries(KEEPALIVE_PROBES);
    }
    match given("tcp_user_timeout").map(|v| v.trim().parse::<u64>()) {
        None => {
            config.tcp_user_timeout(DEAD_PEER_AFTER);
        }
        Some(Ok(ms)) if ms > 0 => {
            config.tcp_user_timeout(Duration::from_millis(ms));
        }
        // 0: the system's default, as in libpq (tokio-postgres left it unset).
        Some(_) => {}
    }
}

/// Drives a connection until it closes, logging how it ended if it failed.
async fn drive<T>(connection: Connection<Socket, T>, target: String)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::warn!(db.target = %target, "database connection ended with an error: {error}");
    }
}

/// Drives a connection, forwarding its asynchronous messages until it closes or nobody listens.
async fn forward_messages<T>(
    mut connection: Connection<Socket, T>,
    tx: tokio::sync::mpsc::UnboundedSender<tokio_postgres::AsyncMessage>,
    target: String,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
        match message {
            Ok(message) => {
                if tx.send(message).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(db.target = %target, "database connection ended with an error: {error}");
                return;
            }
        }
    }
}

/// An error and its causes, joined with `: `.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// Takes `sslmode` and `sslrootcert` out of the query string, keeping every other parameter
/// byte for byte. Returns the cleaned URL, the mode if the URL names one, and the `sslrootcert`.
fn strip_ssl_params(database_url: &str) -> Result<(String, Option<SslMode>, Option<String>), DbUrlError> {
    let Some((base, query)) = database_url.split_once('?') else {
        return Ok((database_url.to_owned(), None, None));
    };
    let (mut mode, mut root_cert, mut kept) = (None, None, Vec::new());
    for raw in query.split('&').filter(|raw| !raw.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(raw.as_bytes()).next().unwrap_or_default();
        match key.as_ref() {
            "sslmode" => mode = Some(value.parse()?),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push(raw),
        }
    }
    let cleaned = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((cleaned, mode, root_cert))
}

#[cfg(test)]
mod tests;
