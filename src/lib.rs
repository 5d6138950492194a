//! seedance-gateway: one normalized `/v1/videos` API in front of the resellers of ByteDance
//! Seedance 2.0, with its own API keys, credit ledger and quotas.
//!
//! Layers, each using only the ones below it (README, "How the code is organised"):
//!
//! - [`cli`] and [`app`]: the commands, and the composition root that builds everything.
//! - [`http`]: the edge — routing, authentication, request parsing, the OpenAPI document.
//! - [`workers`]: background loops (jobs, tenant webhooks, archive) that survive restarts.
//! - [`domain`]: every rule — videos and the job lifecycle, billing and the ledger, routing,
//!   limits, tenants and keys, idempotency, webhooks.
//! - [`storage`]: one API to SQLite or PostgreSQL, and migrations; [`providers`]: one module
//!   per upstream, behind one interface.
//! - [`types`] (ids, money, the video's vocabulary, days), [`clock`], [`config`], [`metrics`],
//!   [`telemetry`], [`error`]: the bottom layer every layer shares.
//!
//! The fake upstreams the tests, the bench and docker-compose run against are a crate of their
//! own (`fake/`, binary `fake-upstream`), not part of this library.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod providers;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod workers;

pub use app::App;
pub use config::Config;
