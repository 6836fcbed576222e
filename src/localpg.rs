//! A private PostgreSQL server started from the installed binaries, for the integration tests
//! (when no `TEST_DATABASE_URL` is given) and for `demo` (when no `DATABASE_URL` is given).
//!
//! The server listens on `127.0.0.1` only, trusts every local connection (role `postgres`), keeps
//! its unix socket in a private directory and trades durability for speed (`fsync=off`). When the
//! process runs as root, as CI does, `initdb` and `postgres` (which refuse root) run as the
//! `postgres` system user through `runuser`. A watchdog process stops the server when this
//! process goes away without dropping the [`LocalPostgres`] (a `static`, a crash, a kill).

mod system;

use std::{
    fs, io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use system::{chown_all, find_bin_dir, free_port, make_parents_traversable, postgres_user, tail, write_private};

/// How long a fresh server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Default, Clone)]
pub struct LocalPgOptions {
    /// Cluster directory, kept and reused when it already holds a cluster; `None` for a
    /// temporary cluster deleted on stop.
    pub data_dir: Option<PathBuf>,
    /// TCP port on `127.0.0.1`; `None` picks a free one.
    pub port: Option<u16>,
    /// Certificate and key to serve TLS with (`ssl=on`); `None` for no TLS.
    pub ssl: Option<SslFiles>,
}

/// A server certificate (chain) and its private key, both PEM.
#[derive(Clone)]
pub struct SslFiles {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for SslFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SslFiles { .. }")
    }
}

/// Why the private server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "PostgreSQL server binaries not found (looked at `pg_config --bindir` and \
         /usr/lib/postgresql/*/bin); install the Debian package `postgresql`"
    )]
    NotInstalled,
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as; install \
         the Debian package `postgresql`, or run as an ordinary user"
    )]
    NoPostgresUser,
    #[error("could not {action}: {source}")]
    Io { action: String, source: io::Error },
    #[error("{what} failed; its output ends with:\n{output}")]
    Failed { what: String, output: String },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> LocalPgError {
    move |source| LocalPgError::Io { action: action.into(), source }
}

/// A running private server; stopped (and its temporary files removed) on `stop` or drop.
#[derive(Debug)]
pub struct LocalPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    /// Private directory for the socket and the server log (and the cluster, when temporary).
    run_dir: PathBuf,
    temporary: bool,
    port: u16,
    /// `(uid, gid)` of the `postgres` user when running as root.
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
    /// Closing its stdin makes the watchdog stop the server.
    watchdog: Option<(Child, ChildStdin)>,
}

impl LocalPostgres {
    /// Initialises the cluster if needed, starts the server and waits until it accepts
    /// connections. Blocks (for about a second); call it from `spawn_blocking` in async code
    /// where that matters.
    pub fn start(opts: LocalPgOptions) -> Result<LocalPostgres, LocalPgError> {
        let bin_dir = find_bin_dir()?;
        let run_as = match fs::metadata("/proc/self").map(|m| m.uid()) {
            Ok(0) => Some(postgres_user()?),
            _ => None,
        };
        let port = match opts.port {
            Some(port) => port,
            None => free_port()?,
        };
        let run_dir = std::env::temp_dir().join(format!("hubspot-sync-pg-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&run_dir).map_err(io_error(format!("create {}", run_dir.display())))?;
        let (data_dir, temporary) = match opts.data_dir {
            Some(dir) => (std::path::absolute(&dir).unwrap_or(dir), false),
            None => (run_dir.join("data"), true),
        };
        let mut pg =
            LocalPostgres { bin_dir, data_dir, run_dir, temporary, port, run_as, server: None, watchdog: None };
        pg.prepare_dirs()?;
        if !pg.data_dir.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        let ssl_settings = match &opts.ssl {
            Some(files) => pg.write_ssl_files(files)?,
            None => vec!["ssl=off".to_owned()],
        };
        pg.spawn(&ssl_settings)?;
        pg.wait_ready()?;
        Ok(pg)
    }

    /// URL of the `postgres` database as the `postgres` superuser (no password, no TLS asked).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server (fast shutdown) without blocking the async runtime.
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    fn prepare_dirs(&self) -> Result<(), LocalPgError> {
        fs::create_dir_all(&self.data_dir).map_err(io_error(format!("create {}", self.data_dir.display())))?;
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        for dir in [&self.run_dir, &self.data_dir] {
            make_parents_traversable(dir)?;
            let owned = fs::metadata(dir).map(|m| m.uid() == uid).unwrap_or(false);
            if !owned {
                chown_all(dir, uid, gid)?;
            }
        }
        for dir in [&self.run_dir, &self.data_dir] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_error(format!("restrict {}", dir.display())))?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), LocalPgError> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync"])
            .output()
            .map_err(io_error("run initdb"))?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(LocalPgError::Failed { what: format!("initdb -D {}", self.data_dir.display()), output: tail(&text) })
    }

    /// Writes `server.crt`/`server.key` (mode 0600) and returns the settings using them.
    fn write_ssl_files(&self, files: &SslFiles) -> Result<Vec<String>, LocalPgError> {
        let cert = self.data_dir.join("server.crt");
        let key = self.data_dir.join("server.key");
        write_private(&cert, &files.cert_pem, self.run_as)?;
        write_private(&key, &files.key_pem, self.run_as)?;
        Ok(vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ])
    }

    fn spawn(&mut self, ssl_settings: &[String]) -> Result<(), LocalPgError> {
        let log_path = self.log_path();
        let log = fs::File::create(&log_path).map_err(io_error(format!("create {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io_error("duplicate the log file"))?;
        let settings = [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ];
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.run_dir)
            .args(settings.iter().copied().flat_map(|s| ["-c", s]))
            .args(ssl_settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error("start postgres"))?;
        self.server = Some(server);
        // Once our end of its stdin closes, however this process ends, the watchdog stops the
        // server and removes the private directory.
        let script = "cat >/dev/null; \"$1\" stop -D \"$2\" -m fast -w -t 30; rm -rf \"$3\"";
        let mut watchdog = self
            .command_for(Path::new("sh"))
            .args(["-c", script, "sh"])
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(&self.data_dir)
            .arg(&self.run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error("start the watchdog"))?;
        if let Some(stdin) = watchdog.stdin.take() {
            self.watchdog = Some((watchdog, stdin));
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), LocalPgError> {
        let started = Instant::now();
        loop {
            let exited = self.server.as_mut().and_then(|s| s.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(self.failed(format!("postgres ({status})")));
            }
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p"])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let what = format!(
                    "waiting {}s for PostgreSQL on port {} to accept connections",
                    READY_TIMEOUT.as_secs(),
                    self.port
                );
                return Err(self.failed(what));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn failed(&self, what: String) -> LocalPgError {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        LocalPgError::Failed { what, output: tail(&log) }
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join("server.log")
    }

    fn command(&self, binary: &str) -> Command {
        self.command_for(&self.bin_dir.join(binary))
    }

    /// A command run as the `postgres` user when we are root, from `/` (our working directory
    /// may be unreadable to that user).
    fn command_for(&self, program: &Path) -> Command {
        let mut command = match self.run_as {
            Some(_) => {
                let mut runuser = Command::new("runuser");
                runuser.args(["-u", "postgres", "--"]).arg(program);
                runuser
            }
            None => Command::new(program),
        };
        command.current_dir("/").env("LC_ALL", "C");
        command
    }

    fn pg_ctl_stop(&self, mode: &str) -> bool {
        self.command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            if !self.pg_ctl_stop("fast") {
                self.pg_ctl_stop("immediate");
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = watchdog.wait();
        }
        let _ = fs::remove_dir_all(&self.run_dir);
        if self.temporary {
            let _ = fs::remove_dir_all(&self.data_dir);
        }
    }
}
