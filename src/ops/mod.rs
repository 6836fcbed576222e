//! The operations surface: health and readiness probes (status API, page and metrics follow).
pub mod health;
