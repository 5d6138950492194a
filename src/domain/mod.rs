//! The gateway's business rules, free of HTTP and SQL: what a video request is, how it is
//! priced and paid for, and who may ask for it.

pub mod access;
pub mod admin;
pub mod archive;
pub mod auth;
pub mod billing;
pub mod end_users;
pub mod idempotency;
pub mod jobs;
pub mod jwt;
pub mod limits;
pub mod provider_webhooks;
pub mod providers;
pub mod reports;
pub mod routing;
pub mod services;
pub mod ssrf;
pub mod tenants;
pub mod video_object;
pub mod videos;
pub mod webhooks;
