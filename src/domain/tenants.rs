//! Tenants and their credentials. An API key is `sgw_live_…` or `sgw_test_…` followed by 40
//! base62 characters (about 238 bits); only its SHA-256 hash and a short display prefix are
//! stored, so the secret is shown exactly once, when it is created.

use sha2::{Digest, Sha256};

use super::billing::{Credits, Mode};
use crate::error::{Error, Result};
use crate::storage::Db;
use crate::types::ids::{random_token, TenantId};

/// Tenants, keys and principals are storage's rows and the vocabulary of every layer above
/// it; the rules about them (a floor per mode, what a scope allows) are methods here.
pub use crate::storage::tenants::{ApiKey, BillingKind, Principal, Scope, Tenant};

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
    use crate::types::ids::TenantId;

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
