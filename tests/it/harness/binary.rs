//! The real `hubspot-sync` binary: `serve` as a child process (up and ready when it is handed
//! back, its log collected as it is written), and the other subcommands' commands.

use std::process::Stdio;
use std::time::Duration;

use hubspot_sim::SimHandle;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

use super::hooks::{NEVER, SCHEDULES};
use super::wait::{PATIENCE, eventually, status_of, within};
use super::{TestDb, bin, free_port};

/// The binary with nothing of the test's environment but `PATH`, logging JSON.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("LOG_FORMAT", "json");
    cmd
}

/// The HubSpot access token the binary gets in tests (it must never be printed).
pub const ACCESS_TOKEN: &str = "pat-na1-secret-test-token";

/// The binary on `db`, with the simulator as HubSpot (a large budget).
pub fn command_for(db: &TestDb, sim: &SimHandle) -> Command {
    let mut cmd = command();
    cmd.env("DATABASE_URL", db.url())
        .env("HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("HUBSPOT_API_BASE", sim.url())
        .env("HUBSPOT_REQUESTS_PER_10S", "1000");
    cmd
}

/// Settings for `hubspot-sync serve` as a child process.
pub struct ServeBinary {
    cmd: Command,
    port: u16,
    inherit_stderr: bool,
}

impl ServeBinary {
    /// `serve` on `database_url`, on 127.0.0.1 and a free port, metrics on a port of its own.
    pub fn new(database_url: &str) -> Self {
        let mut cmd = command();
        cmd.arg("serve").env("DATABASE_URL", database_url).env("BIND", "127.0.0.1").env("METRICS_PORT", "0");
        ServeBinary { cmd, port: free_port(), inherit_stderr: false }
    }

    /// The simulator as HubSpot (with [`ACCESS_TOKEN`]).
    pub fn hubspot(self, sim: &SimHandle) -> Self {
        self.env("HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN).env("HUBSPOT_API_BASE", sim.url())
    }

    /// No schedule fires while the test runs.
    pub fn quiet_schedules(mut self) -> Self {
        for (_, var) in SCHEDULES {
            self.cmd.env(var, NEVER);
        }
        // Nor do the fast polling lanes search (they would without HUBSPOT_CLIENT_SECRET).
        self.cmd.env("FAST_POLL", "off");
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(name, value);
        self
    }

    /// Listen on this port (for example the one a simulator delivers its webhooks to).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Let the log go to the test's stderr instead of collecting it.
    pub fn inherit_stderr(mut self) -> Self {
        self.inherit_stderr = true;
        self
    }

    /// Starts the process; it answers `/readyz` with 200 when this returns.
    pub async fn spawn(mut self) -> ServeProcess {
        let stderr = if self.inherit_stderr { Stdio::inherit() } else { Stdio::piped() };
        self.cmd.env("PORT", self.port.to_string()).stdout(Stdio::null()).stderr(stderr).kill_on_drop(true);
        let mut child = self.cmd.spawn().expect("start hubspot-sync serve");
        let logs = child.stderr.take().map(|mut stderr| {
            // Read as it is written: an unread pipe would fill up and block the server.
            tokio::spawn(async move {
                let mut logs = String::new();
                let _ = stderr.read_to_string(&mut logs).await;
                logs
            })
        });
        let base = format!("http://127.0.0.1:{}", self.port);
        let ready = format!("{base}/readyz");
        eventually(PATIENCE, "serve did not become ready", || async { status_of(&ready).await == Some(200) }).await;
        ServeProcess { child, port: self.port, base, logs }
    }
}

/// A running `serve` process.
pub struct ServeProcess {
    pub child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    logs: Option<tokio::task::JoinHandle<String>>,
}

impl ServeProcess {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `sig` (`-TERM`, `-INT`...) with `kill`.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// Waits for the process to end (within `patience`); its exit code and its log.
    pub async fn exit(mut self, patience: Duration) -> (Option<i32>, String) {
        let status = within(patience, "the process exits", self.child.wait()).await.unwrap();
        let logs = match self.logs.take() {
            Some(logs) => logs.await.unwrap(),
            None => String::new(),
        };
        (status.code(), logs)
    }

    /// SIGKILL, and waits for the process to be gone; its exit code (`None`: killed by a signal).
    pub async fn kill(mut self) -> Option<i32> {
        self.child.start_kill().unwrap();
        within(PATIENCE, "the killed process ends", self.child.wait()).await.unwrap().code()
    }
}
