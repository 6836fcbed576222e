#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The one integration-test binary (`cargo test --test it`). Every test that needs PostgreSQL
//! gets its own database cloned from a migrated template (see `harness::db`).

mod cli;
mod harness;
mod migrations;
mod pool;
mod serve;
mod store;
mod tls;
