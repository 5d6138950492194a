//! Tenants and their credentials. An API key is `sgw_live_…` or `sgw_test_…` followed by 40
//! base62 characters (about 238 bits); only its SHA-256 hash and a short display prefix are
//! stored, so the secret is shown exactly once, when it is created.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::billing::{Credits, Mode};
use crate::error::{Error, Result};
use crate::storage::Db;
use crate::types::ids::{random_token, ApiKeyId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingKind {
    /// Pays in advance: the available balance never goes below zero.
    Prepaid,
    /// An internal team billed afterwards: may go down to its (negative) credit floor.
    Postpaid,
}

impl BillingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingKind::Prepaid => "prepaid",
            BillingKind::Postpaid => "postpaid",
        }
    }

    pub fn parse(raw: &str) -> Option<BillingKind> {
        match raw {
            "prepaid" => Some(BillingKind::Prepaid),
            "postpaid" => Some(BillingKind::Postpaid),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub billing_kind: BillingKind,
    pub credit_floor: Credits,
    pub created_at_ms: i64,
}

impl Tenant {
    /// The lowest the tenant's available balance may go in `mode`: its credit floor for live
    /// money; zero for test money, which is never lent.
    pub fn floor(&self, mode: Mode) -> Credits {
        match mode {
            Mode::Live => self.credit_floor,
            Mode::Test => Credits::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub mode: Mode,
    pub display_prefix: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    /// `None`: every scope.
    pub scopes: Option<Vec<Scope>>,
    pub expires_at_ms: Option<i64>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Create, cancel and delete videos.
    #[serde(rename = "videos:write")]
    VideosWrite,
    /// Read videos, their content, quotes and models.
    #[serde(rename = "videos:read")]
    VideosRead,
    /// Read the balance, journal, usage and end users.
    #[serde(rename = "billing:read")]
    BillingRead,
    /// Set end users' limits and move their wallets.
    #[serde(rename = "end_users:write")]
    EndUsersWrite,
    /// Manage webhook endpoints and secrets, read the delivery log, redeliver.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::VideosWrite,
        Scope::VideosRead,
        Scope::BillingRead,
        Scope::EndUsersWrite,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::VideosWrite => "videos:write",
            Scope::VideosRead => "videos:read",
            Scope::BillingRead => "billing:read",
            Scope::EndUsersWrite => "end_users:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The caller of a tenant-facing request, once its key has been checked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub mode: Mode,
    /// `None`: every scope.
    pub scopes: Option<Vec<Scope>>,
    /// The end user a JWT speaks for: the caller can act only as this user.
    pub end_user: Option<crate::types::ids::EndUserId>,
    /// When the credential stops working (unix milliseconds), if it expires.
    pub expires_at_ms: Option<i64>,
}

impl Principal {
    /// 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), crate::error::Error> {
        match &self.scopes {
            Some(scopes) if !scopes.contains(&scope) => Err(crate::error::Error::Forbidden(
                format!("this API key lacks the {} scope", scope.as_str()),
            )),
            _ => Ok(()),
        }
    }
}

/// A freshly generated secret: the clear text (shown once) and what is stored.
pub struct GeneratedSecret {
    pub secret: String,
    pub hash: String,
    pub display_prefix: String,
}

const KEY_BODY_LEN: usize = 40;

pub fn generate_api_key(mode: Mode) -> GeneratedSecret {
    generate_secret(&format!("sgw_{}_", mode.as_str()))
}

pub fn generate_admin_token() -> GeneratedSecret {
    generate_secret("sgw_admin_")
}

fn generate_secret(prefix: &str) -> GeneratedSecret {
    let secret = format!("{prefix}{}", random_token(KEY_BODY_LEN));
    GeneratedSecret {
        hash: hash_secret(&secret),
        display_prefix: secret[..prefix.len() + 6].to_string(),
        secret,
    }
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Cheap shape check before any database lookup: the right prefix and length, base62 body.
pub fn looks_like_api_key(candidate: &str) -> bool {
    let body = candidate
        .strip_prefix("sgw_live_")
        .or_else(|| candidate.strip_prefix("sgw_test_"));
    body.is_some_and(|b| b.len() == KEY_BODY_LEN && b.bytes().all(|c| c.is_ascii_alphanumeric()))
}

pub async fn tenant(db: &Db, id: &TenantId) -> Result<Tenant> {
    db.get_tenant(id).await?.ok_or(Error::NotFound("tenant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_their_mode_prefix_and_verify_by_hash() {
        let key = generate_api_key(Mode::Test);
        assert!(key.secret.starts_with("sgw_test_"));
        assert!(looks_like_api_key(&key.secret));
        assert_eq!(hash_secret(&key.secret), key.hash);
        assert_eq!(key.display_prefix.len(), "sgw_test_".len() + 6);
        assert_ne!(generate_api_key(Mode::Test).secret, key.secret);
    }

    #[test]
    fn malformed_keys_are_refused_before_lookup() {
        assert!(!looks_like_api_key("sgw_live_short"));
        assert!(!looks_like_api_key("sk-something"));
        assert!(!looks_like_api_key(&format!("sgw_prod_{}", "a".repeat(40))));
    }

    #[test]
    fn live_money_goes_down_to_the_tenant_floor_and_test_money_to_zero() {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: "postpaid team".into(),
            billing_kind: BillingKind::Postpaid,
            credit_floor: Credits::from_stored(-5_000),
            created_at_ms: 0,
        };
        assert_eq!(tenant.floor(Mode::Live), Credits::from_stored(-5_000));
        assert_eq!(tenant.floor(Mode::Test), Credits::ZERO);
    }
}
