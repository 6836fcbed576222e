#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The one integration-test binary (`cargo test --test it`). Every test that needs PostgreSQL
//! gets its own database cloned from a migrated template (see `harness::db`).

mod accounts;
mod accounts_serve;
mod alerts;
mod associations;
mod audit;
mod cli;
mod config_file;
mod config_filter;
mod demo;
mod exposure;
mod fast_poll;
mod faults_database;
mod faults_deploy;
mod faults_hostile;
mod faults_hubspot;
mod full_split;
mod harness;
mod history;
mod hubspot_client;
mod keep_alive;
mod leader;
mod listen;
mod lock_order;
mod migrations;
mod owner_hooks;
mod poison;
mod poller;
mod poller_harsh;
mod pool;
mod privacy;
mod realtime;
mod realtime_order;
mod retention;
mod routes;
mod serve;
mod shutdown;
mod sim_harsh;
mod soak;
mod status_api;
mod status_page;
mod store;
mod sync_cli;
mod tls;
mod webhook;
