//! Redacted secret values: they print as `[redacted]` in `Debug`, `Display` and logs, and are
//! only readable through [`Secret::expose`]. Built on `secrecy` (zeroised on drop).

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

/// One secret (a token or a client secret). Never empty.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself: only for the place that uses it (a header, an HMAC key).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Constant-time comparison with a candidate (for bearer tokens).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.expose().as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self::new(trimmed))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Several secrets, comma-separated (`HUBSPOT_CLIENT_SECRET` during a rotation).
#[derive(Clone, Debug)]
pub struct SecretList(Vec<Secret>);

impl SecretList {
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for SecretList {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let secrets = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Secret::new).collect::<Vec<_>>();
        if secrets.is_empty() {
            return Err("must hold at least one secret".into());
        }
        Ok(Self(secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = "pat-na1-123".parse().unwrap();
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "pat-na1-123");
    }

    #[test]
    fn rotation_list_splits_on_commas() {
        let list: SecretList = " old , new ,".parse().unwrap();
        let values: Vec<_> = list.iter().map(Secret::expose).collect();
        assert_eq!(values, ["old", "new"]);
        assert!(",,".parse::<SecretList>().is_err());
        assert!(!format!("{list:?}").contains("old"));
    }

    #[test]
    fn matches_is_exact() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("abcd"));
        assert!(!s.matches(""));
    }
}
