//! `[admin]` and `[auth]`: who may call the gateway besides its own API keys — the operator's
//! token for `/admin/v1`, and the identity providers whose JWTs it accepts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Operator token for `/admin/v1`. Optional: `bootstrap` can generate one instead.
    pub token: Option<Secret>,
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token {
            if token.expose().len() < 16 {
                return Err(ConfigError::Invalid(
                    "admin.token must be at least 16 characters".into(),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Identity providers whose JWTs the gateway accepts (internal teams).
    pub jwt_issuers: Vec<JwtIssuerConfig>,
}

/// One JWT issuer. Its algorithm is pinned: a token signed with any other is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry for this gateway.
    pub audience: String,
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// HS256 shared secret.
    pub secret: Option<Secret>,
    /// RS256/ES256 public key, PEM text or a file.
    pub public_key_pem: Option<String>,
    pub public_key_file: Option<PathBuf>,
    /// RS256/ES256 keys as a JWKS document, from a file or a URL (read at start); tokens
    /// select a key by `kid`.
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// The claim naming the tenant id (default `tenant`).
    pub tenant_claim: Option<String>,
    /// The claim naming the end user, if any.
    pub user_claim: Option<String>,
    /// A claim and the value in it that opens `/admin` (e.g. `roles` / `gateway-admin`).
    pub admin_claim: Option<String>,
    pub admin_value: Option<String>,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds (default 30).
    pub leeway_secs: Option<u64>,
}
