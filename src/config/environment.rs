//! Where the secrets an account names by variable (`token_env`, `client_secret_env`) are read:
//! the process environment, or, for `demo` (whose second simulated account has no variable set
//! by anyone), a few values given in code that take precedence. Passed explicitly, never written
//! into the process environment (`set_var` races every other thread's reads).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Secret;

/// The process environment, with values given in code over it. Cheap to clone; its `Debug`
/// names the variables, never their values.
#[derive(Clone, Default)]
pub struct Environment {
    given: Arc<BTreeMap<String, Secret>>,
}

impl Environment {
    /// The same, with `name` reading `value`.
    pub fn with(self, name: &str, value: Secret) -> Self {
        let mut given = (*self.given).clone();
        given.insert(name.to_owned(), value);
        Self { given: Arc::new(given) }
    }

    /// The value of `name`: given in code, else the process environment's.
    pub fn var(&self, name: &str) -> Option<String> {
        match self.given.get(name) {
            Some(secret) => Some(secret.expose().to_owned()),
            None => std::env::var(name).ok(),
        }
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("given", &self.given.keys().collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_values_come_first_and_are_never_printed() {
        let env = Environment::default().with("HUBSPOT_SYNC_TEST_GIVEN", Secret::new("s3cret"));
        assert_eq!(env.var("HUBSPOT_SYNC_TEST_GIVEN").as_deref(), Some("s3cret"));
        assert_eq!(env.var("HUBSPOT_SYNC_TEST_SURELY_UNSET"), None);
        assert!(!format!("{env:?}").contains("s3cret"));
    }
}
