//! seedance-gateway: one normalized `/v1/videos` API in front of the resellers of ByteDance
//! Seedance 2.0, with its own API keys, credit ledger and quotas.
//!
//! - [`http`]: the edge — routing, authentication, request parsing, the OpenAPI document.
//! - [`domain`]: the rules — videos, billing (pricing and the ledger), tenants and keys.
//! - [`providers`]: one module per upstream, behind one interface.
//! - [`storage`]: SQL for SQLite and PostgreSQL, and migrations.
//! - [`workers`]: background work (dispatch, polling, settlement) that survives restarts.
//!
//! The fake upstreams the tests, the bench and docker-compose run against are a crate of their
//! own (`fake/`, binary `fake-upstream`), not part of this library.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod providers;
pub mod storage;
pub mod telemetry;
pub mod workers;

pub use app::{App, AppState};
pub use config::Config;
