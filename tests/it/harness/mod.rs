//! Test harness: throwaway databases, the `hubspot-sync` binary, and small helpers.
pub mod db;

pub use db::TestDb;

/// Path of the `hubspot-sync` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hubspot-sync")
}
