//! Test harness: throwaway databases, the `hubspot-sync` binary, a controllable TCP proxy, and
//! small helpers.
pub mod compare;
pub mod db;
#[allow(dead_code)] // used by the fault scenarios
pub mod proxy;

pub use db::TestDb;
#[allow(unused_imports)] // used by the fault scenarios
pub use proxy::Proxy;

/// Path of the `hubspot-sync` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hubspot-sync")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
