//! Why the private server could not be started.

use std::io;
use std::path::PathBuf;

/// Written into every cluster this module initialises, so `fresh` deletes only those.
pub const MARKER_FILE: &str = "hubspot-sync-localpg";

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
    #[error(
        "a PostgreSQL server (pid {pid}) is already running from {}: another process using this \
         directory started it, or one that was killed left it behind. Stop that process first; if \
         none is left, stop the server with `kill {pid}` and start again",
        data_dir.display()
    )]
    AlreadyRunning { pid: u32, data_dir: PathBuf },
    #[error(
        "{} is not empty and was not created by hubspot-sync (no {MARKER_FILE} file in it), so it \
         is left alone; delete it yourself or choose another directory",
        data_dir.display()
    )]
    NotOurs { data_dir: PathBuf },
}

pub fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> LocalPgError {
    move |source| LocalPgError::Io { action: action.into(), source }
}
