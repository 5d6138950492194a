//! `[server]`: where the HTTP server listens, and how much a request or connection may take.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public base URL of the gateway, used for callback URLs handed to upstreams.
    pub public_base_url: Option<String>,
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes (JSON and multipart alike).
    pub max_body_bytes: usize,
    /// Time a request may take before it is answered 408, in seconds (body included, so a
    /// client trickling its body is cut off too).
    pub request_timeout_secs: u64,
    /// Time a client has to send a request's headers (also between keep-alive requests)
    /// before the connection is closed, in seconds.
    pub header_read_timeout_secs: u64,
    /// Most connections open at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Time given to in-flight requests after SIGTERM, in seconds.
    pub shutdown_grace_secs: u64,
    /// How long a request repeating an `Idempotency-Key` whose first request is still in
    /// flight waits for that request's answer before it is answered 409
    /// `idempotency_in_progress`, in milliseconds.
    pub idempotency_wait_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_base_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 20 * 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            shutdown_grace_secs: 20,
            idempotency_wait_ms: 15_000,
        }
    }
}
