//! Why a command did not succeed, and so which exit code it gets.

use std::process::ExitCode;

use crate::config::{ConfigError, CopyConfigError};
use crate::telemetry::ErrorChain;

/// Why a command did not succeed, and so which exit code it gets.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The error and its causes, each said once (errors such as `StoreError` print their cause
    /// and also return it as `source()`).
    #[error("{}", ErrorChain(.0.as_ref()))]
    Failed(#[from] anyhow::Error),
    #[error("{0}")]
    PortInUse(String),
}

/// `PortInUse` naming the setting when `error` is "address in use", else `Failed`.
pub(crate) fn port_in_use(error: anyhow::Error, bind: std::net::IpAddr, port: u16, var: &str) -> CliError {
    let in_use = error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::AddrInUse);
    if !in_use {
        return CliError::Failed(error);
    }
    let flag = var.to_lowercase().replace('_', "-");
    CliError::PortInUse(format!(
        "port {port} ({var}) is already in use on {bind}, perhaps by another hubspot-sync; stop that program or \
         set {var} (or --{flag}) to a free port"
    ))
}

/// An unusable `HUBSPOT_SYNC_CONFIG` is an invalid setting (exit 2), its problems listed by line.
impl From<CopyConfigError> for CliError {
    fn from(e: CopyConfigError) -> Self {
        CliError::Config(ConfigError::Stated(e.to_string()))
    }
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::from(1),
            Self::PortInUse(_) => ExitCode::from(3),
        }
    }
}
