//! Test harness: throwaway databases, a configured app in process ([`TestApp`]) or as the real
//! binary ([`binary::ServeBinary`]), the simulator's HubSpot, signed webhooks, a controllable TCP
//! proxy, and waiting for conditions (never for a time: [`wait`]).
#![allow(dead_code, unused_imports)] // each test file uses its own part of the harness

pub mod app;
pub mod binary;
pub mod compare;
pub mod control;
pub mod db;
pub mod hooks;
pub mod hubspot;
pub mod proxy;
pub mod smtp;
pub mod wait;

pub use app::TestApp;
pub use db::TestDb;
pub use proxy::Proxy;
pub use wait::{PATIENCE, eventually, until_some, within};

/// Path of the `hubspot-sync` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hubspot-sync")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET url` with `Authorization: Bearer token` when given: the status code and the JSON body
/// (null when the body is not JSON).
pub async fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(serde_json::Value::Null))
}
