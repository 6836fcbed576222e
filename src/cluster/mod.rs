//! More than one `serve` machine on one database: which machine runs each non-default HubSpot
//! account, and how a webhook that reached another machine gets to it.
//!
//! - [`Leases`] (`leases`): one task per machine beats in `machines`, renews the account leases
//!   it holds, takes free or expired ones up to its fair share (`ceil(accounts / live
//!   machines)`), lets its surplus go when machines join, and publishes the portal ids it runs
//!   on a `watch` channel: the runtime runs exactly those accounts. A machine that cannot renew
//!   stops publishing a lease before it expires (by its own monotonic clock), so no account ever
//!   runs on two machines and each account's HubSpot budget is spent by one process.
//! - [`Drain`] (`handoff`): the lease holder takes the webhook batches other machines handed over
//!   for its accounts (`webhook_handoff`, `SKIP LOCKED`) and gives each batch to the intake in the
//!   transaction that deletes it: a failure or a crash puts it back.
//!
//! PostgreSQL is the only thing the machines share (see ARCHITECTURE.md for why the hand-over
//! goes through it rather than Fly's `fly-replay`). The SQL is in `store::cluster`.

mod handoff;
mod leases;

pub use handoff::{Drain, DrainError};
pub use leases::{LeaseTimings, Leases, LeasesHandle, fair_share};

/// The portal ids this process runs (the non-default accounts whose lease it holds).
pub type HeldPortals = tokio::sync::watch::Receiver<std::collections::BTreeSet<i64>>;
