//! hubspot-sync keeps a PostgreSQL copy of a HubSpot CRM account current in near real time.
//!
//! Data flow (see `ARCHITECTURE.md`):
//! - real time: `webhook` -> `signature` -> `queue` -> `fetcher` -> `store`
//! - reconciliation: `poller` -> `hubspot` client -> `store` -> `sync_logs`
//!
//! This crate is both the library (used by the integration tests, benches and the binary) and the
//! `hubspot-sync` binary in `src/main.rs`.

pub mod alerts;
pub mod app;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod fetcher;
pub mod hubspot;
pub mod kind;
pub mod localpg;
pub mod maintenance;
pub mod metric;
pub mod minutes;
pub mod objects;
pub mod ops;
pub mod owner_hooks;
pub mod poller;
pub mod queue;
pub mod runtime;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod webhook;
