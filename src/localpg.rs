//! A private PostgreSQL server started from the installed binaries, for the integration tests
//! (when no `TEST_DATABASE_URL` is given) and for `demo` (when no `DATABASE_URL` is given).
//!
//! The server listens on `127.0.0.1` only, trusts every local connection (role `postgres`), keeps
//! its unix socket in a private directory and trades durability for speed (`fsync=off`). When the
//! process runs as root, as CI does, `initdb` and `postgres` (which refuse root) run as the
//! `postgres` system user through `runuser`. A watchdog process stops the server when this
//! process goes away without dropping the [`LocalPostgres`] (a `static`, a crash, a kill).
//!
//! Only the server this process started is ever stopped, by its pid (never `pg_ctl stop -D`,
//! which stops whoever owns the directory). The server and the watchdog run in process groups
//! of their own, so a terminal's Ctrl-C or hang-up reaches only this process, which then stops
//! them in order. A kept cluster whose `postmaster.pid` names a live server is refused with what
//! to do; one naming a dead pid (left by a killed process) is cleaned up.

mod error;
mod system;

use error::io_error;
pub use error::{LocalPgError, MARKER_FILE};

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    os::unix::process::CommandExt,
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
    /// Start from an empty cluster: a kept cluster this module created (it carries
    /// [`MARKER_FILE`]) is deleted first; any other non-empty directory is refused.
    pub fresh: bool,
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
    /// The postmaster's pid (from `postmaster.pid` once it is ready): what `stop` signals.
    postmaster: Option<u32>,
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
        let mut pg = LocalPostgres {
            bin_dir,
            data_dir,
            run_dir,
            temporary,
            port,
            run_as,
            server: None,
            postmaster: None,
            watchdog: None,
        };
        if !temporary {
            pg.check_not_running()?;
            if opts.fresh {
                pg.remove_cluster()?;
            }
        }
        pg.prepare_dirs()?;
        if !pg.data_dir.join("PG_VERSION").exists() {
            pg.initdb()?;
            write_private(&pg.data_dir.join(MARKER_FILE), "created by hubspot-sync\n", pg.run_as)?;
        }
        let ssl_settings = match &opts.ssl {
            Some(files) => pg.write_ssl_files(files)?,
            None => vec!["ssl=off".to_owned()],
        };
        pg.spawn(&ssl_settings)?;
        pg.wait_ready()?;
        pg.postmaster = read_postmaster_pid(&pg.data_dir);
        pg.spawn_watchdog()?;
        Ok(pg)
    }

    /// Refuses a cluster a live server is using; removes the lock file of a dead one.
    fn check_not_running(&self) -> Result<(), LocalPgError> {
        let lock = self.data_dir.join("postmaster.pid");
        let Some(pid) = read_postmaster_pid(&self.data_dir) else {
            return Ok(());
        };
        if is_postgres(pid) {
            return Err(LocalPgError::AlreadyRunning { pid, data_dir: self.data_dir.clone() });
        }
        fs::remove_file(&lock).map_err(io_error(format!("remove the stale {}", lock.display())))
    }

    /// Deletes a kept cluster this module created; refuses any other non-empty directory.
    fn remove_cluster(&self) -> Result<(), LocalPgError> {
        let empty = fs::read_dir(&self.data_dir).map(|mut d| d.next().is_none()).unwrap_or(true);
        if empty {
            return Ok(());
        }
        if !self.data_dir.join(MARKER_FILE).is_file() {
            return Err(LocalPgError::NotOurs { data_dir: self.data_dir.clone() });
        }
        fs::remove_dir_all(&self.data_dir).map_err(io_error(format!("delete {}", self.data_dir.display())))
    }

    /// The postmaster's pid, once the server is ready.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster
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
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error("start postgres"))?;
        self.server = Some(server);
        Ok(())
    }

    /// Once our end of its stdin closes, however this process ends, the watchdog stops the
    /// server by its pid (fast shutdown, then immediate after 30 s) and removes the private
    /// directory. It ignores hang-ups and interrupts: only this process decides when to stop.
    fn spawn_watchdog(&mut self) -> Result<(), LocalPgError> {
        let script = "trap '' HUP INT TERM; cat >/dev/null; \
            if [ -n \"$1\" ]; then kill -INT \"$1\" 2>/dev/null; n=0; \
              while kill -0 \"$1\" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; \
              kill -QUIT \"$1\" 2>/dev/null; fi; rm -rf \"$2\"";
        let pid = self.postmaster.map(|p| p.to_string()).unwrap_or_default();
        let mut watchdog = self
            .command_for(Path::new("sh"))
            .args(["-c", script, "sh"])
            .arg(pid)
            .arg(&self.run_dir)
            .process_group(0)
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

    /// Signals our postmaster (`INT`: fast shutdown, `QUIT`: immediate) and waits up to
    /// `within` for it to exit; true when it is gone.
    fn signal_and_wait(&self, pid: u32, signal: &str, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while is_alive(pid) {
            if started.elapsed() > within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

/// The pid on the first line of a cluster's `postmaster.pid`, if any.
fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether a process with this pid exists (and is not a zombie).
fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is a live PostgreSQL server process.
fn is_postgres(pid: u32) -> bool {
    is_alive(pid) && fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim().starts_with("postgres"))
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            if let Some(pid) = self.postmaster {
                if !self.signal_and_wait(pid, "INT", Duration::from_secs(30)) {
                    self.signal_and_wait(pid, "QUIT", Duration::from_secs(10));
                }
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
