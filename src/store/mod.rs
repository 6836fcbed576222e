//! PostgreSQL: the connection pool, embedded migrations, and one module per table.
//!
//! Every query function takes `&mut AsyncPgConnection`; callers own transactions. The store never
//! sees HubSpot wire types: `objects` maps them to the row structs defined here.

pub mod accounts;
pub mod associations;
pub mod audit;
pub mod calls;
pub mod cluster;
pub mod connect;
pub mod contacts;
pub mod deals;
mod error;
pub mod history;
pub mod locks;
pub mod mapped_columns;
pub mod migrations;
pub mod notify;
pub mod owner_changes;
pub mod pool;
pub mod privacy;
pub mod records;
pub mod retention;
pub mod run_history;
pub mod schema;
pub mod settings;
pub mod staff;
pub mod sync_failures;
pub mod sync_logs;
pub mod sync_state;
pub mod webhook_replay;

pub use error::{Cause, StoreError};
pub use pool::{Pool, PooledConn, build_pool, build_pool_for, commit_durably, db_now, ping, ping_conn};
