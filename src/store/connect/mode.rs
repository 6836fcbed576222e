//! libpq's `sslmode` as hubspot-sync honours it, and why a `DATABASE_URL` cannot be used.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// libpq's `sslmode`, as honoured by hubspot-sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not verified (libpq's default).
    #[default]
    Prefer,
    /// TLS mandatory; the certificate is not verified unless a root CA file is given (then as
    /// [`SslMode::VerifyCa`], see [`SslMode::in_force`]).
    Require,
    /// TLS mandatory, certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS mandatory, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The mode libpq actually applies: `require` with a root CA file (`DATABASE_CA_CERT` or
    /// `sslrootcert`) verifies the certificate chain against it, exactly as `verify-ca` does
    /// (libpq keeps this for compatibility: before `verify-ca` existed, giving a CA was how one
    /// asked for verification). Every other mode is applied as written.
    pub fn in_force(self, has_root_ca: bool) -> SslMode {
        match self {
            SslMode::Require if has_root_ca => SslMode::VerifyCa,
            other => other,
        }
    }
}

impl FromStr for SslMode {
    type Err = DbUrlError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(DbUrlError::UnknownSslMode(other.to_owned())),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `DATABASE_URL` or `DATABASE_CA_CERT` cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DbUrlError {
    #[error("DATABASE_URL is not a usable PostgreSQL URL: {0}")]
    Invalid(String),
    #[error(
        "DATABASE_URL uses port 6543, Supabase's transaction pooler, which breaks the prepared \
         statements hubspot-sync relies on; use the direct connection or the session pooler on \
         port 5432 instead"
    )]
    TransactionPooler,
    #[error(
        "sslmode={0:?} is not supported in DATABASE_URL; use one of disable, prefer, require, \
         verify-ca, verify-full"
    )]
    UnknownSslMode(String),
    #[error("DATABASE_CA_CERT file {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("could not set up TLS for the database connection: {0}")]
    Tls(String),
    #[error(
        "sslmode={0} cannot be used with sslrootcert=system in DATABASE_URL: the public roots only \
         prove who the server is together with its host name; use sslmode=verify-full (as libpq \
         requires)"
    )]
    WeakModeWithSystemRoots(SslMode),
}
