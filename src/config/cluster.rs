//! Several `serve` machines on one database (`CLUSTER_*`, `MACHINE_ID`, `HANDOFF_*`): how often a
//! machine beats and renews its account leases, how long a lease lasts, how early a machine that
//! cannot renew stops running an account, and how the webhook hand-over is drained (`cluster`).

use std::time::Duration;

use super::ConfigError;
use super::polling::positive_duration;

/// Settings of the account leases and the webhook hand-over.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterSettings {
    /// This machine's name in the `machines` and `account_leases` tables; default: the Fly
    /// machine id (`FLY_MACHINE_ID`) or the host name, with a random suffix per process.
    #[arg(long, env = "MACHINE_ID", value_name = "MACHINE_ID")]
    pub machine_id: Option<String>,
    /// How often a machine beats (`machines.heartbeat_at`), renews its leases and rebalances.
    #[arg(long, env = "CLUSTER_HEARTBEAT", value_name = "CLUSTER_HEARTBEAT", default_value = "3s",
          value_parser = positive_duration)]
    pub cluster_heartbeat: Duration,
    /// How long a lease lasts from its last renewal; also how long a machine counts as live
    /// after its last beat. A dead machine's accounts move within about this plus a beat.
    #[arg(long, env = "CLUSTER_LEASE", value_name = "CLUSTER_LEASE", default_value = "10s",
          value_parser = positive_duration)]
    pub cluster_lease: Duration,
    /// How long before a lease's expiry (by its own clock, from the last renewal it saw
    /// succeed) a machine that could not renew stops running the account.
    #[arg(long, env = "CLUSTER_FENCE_MARGIN", value_name = "CLUSTER_FENCE_MARGIN", default_value = "2s",
          value_parser = positive_duration)]
    pub cluster_fence_margin: Duration,
    /// How often the lease holder looks for webhook batches handed over by other machines.
    #[arg(long, env = "HANDOFF_POLL", value_name = "HANDOFF_POLL", default_value = "500ms",
          value_parser = positive_duration)]
    pub handoff_poll: Duration,
    /// The most handed-over batches taken (and handed to the intake) in one transaction.
    #[arg(long, env = "HANDOFF_BATCH", value_name = "HANDOFF_BATCH", default_value = "100",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub handoff_batch: u16,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            machine_id: None,
            cluster_heartbeat: Duration::from_secs(3),
            cluster_lease: Duration::from_secs(10),
            cluster_fence_margin: Duration::from_secs(2),
            handoff_poll: Duration::from_millis(500),
            handoff_batch: 100,
        }
    }
}

impl ClusterSettings {
    /// Refuses timings under which a healthy machine could lose its own leases: a beat, its
    /// bounded database step (one beat) and the margin must fit in a lease.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let needed = self.cluster_heartbeat * 2 + self.cluster_fence_margin;
        if self.cluster_lease <= needed {
            return Err(ConfigError::Invalid {
                var: "CLUSTER_LEASE",
                reason: format!(
                    "{:?} must be longer than twice CLUSTER_HEARTBEAT plus CLUSTER_FENCE_MARGIN ({needed:?})",
                    self.cluster_lease
                ),
            });
        }
        Ok(())
    }

    /// [`ClusterSettings::machine_id`], else the Fly machine id or host name with a random
    /// suffix (unique per process, so a restarted machine never renews its predecessor's leases).
    pub fn machine_id(&self) -> String {
        if let Some(id) = self.machine_id.as_deref().filter(|id| !id.trim().is_empty()) {
            return id.trim().to_owned();
        }
        let host = std::env::var("FLY_MACHINE_ID")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "machine".to_owned());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}", &suffix[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_a_too_short_lease_is_refused() {
        assert!(ClusterSettings::default().validate().is_ok());
        let short = ClusterSettings { cluster_lease: Duration::from_secs(8), ..ClusterSettings::default() };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.starts_with("CLUSTER_LEASE is invalid"), "{err}");
    }

    #[test]
    fn machine_ids_are_unique_per_process_unless_set() {
        let settings = ClusterSettings::default();
        assert_ne!(settings.machine_id(), settings.machine_id());
        let named = ClusterSettings { machine_id: Some(" m1 ".into()), ..ClusterSettings::default() };
        assert_eq!(named.machine_id(), "m1");
    }
}
