//! JWT authentication for internal teams. Each configured issuer pins one algorithm (HS256
//! with a secret, RS256/ES256 with a PEM key or a JWKS document selected by `kid`); a token
//! whose header names another algorithm — `none` included — is refused before any key is
//! tried, which closes the HS/RS confusion. `iss`, `aud`, `exp` and `nbf` are checked with a
//! small leeway. Claims map to the tenant (claim name configurable), optionally the end user,
//! the scopes (`scope`: a space-separated string as in RFC 8693 §4.2 and RFC 9068 §2.2.3, or an
//! array of strings) and an operator role that opens `/admin`.
//!
//! Claims fail closed: a claim that is present with a type the gateway does not expect, a
//! scope it does not know, or a date it cannot represent refuses the token; nothing of an
//! unexpected shape is read as absent (absent would mean "no restriction" for `scope`).

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, JwtIssuerConfig};
use crate::domain::tenants::Scope;
use crate::error::Error;
use crate::types::ids::{ApiKeyId, EndUserId, TenantId};
use crate::types::money::Mode;

enum Keys {
    One(DecodingKey),
    ByKid(Vec<(String, DecodingKey)>),
}

struct Issuer {
    config: JwtIssuerConfig,
    algorithm: Algorithm,
    keys: Keys,
}

/// The configured issuers.
#[derive(Default)]
pub struct Issuers {
    issuers: Vec<Issuer>,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant: Option<TenantId>,
    pub end_user: Option<EndUserId>,
    pub admin: bool,
    pub scopes: Option<Vec<Scope>>,
    pub mode: Mode,
    /// A stable id for this issuer and subject, used where a key id is (rates, usage).
    pub key_id: ApiKeyId,
}

fn refused(why: &str) -> Error {
    Error::Unauthorized("invalid_token", format!("the token is not accepted: {why}"))
}

impl Issuers {
    pub async fn from_config(config: &AuthConfig) -> anyhow::Result<Issuers> {
        let mut issuers = Vec::new();
        for issuer in &config.jwt_issuers {
            let algorithm = match issuer.algorithm.as_str() {
                "HS256" => Algorithm::HS256,
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                other => anyhow::bail!(
                    "auth.jwt_issuers: algorithm `{other}` is not supported (HS256, RS256, ES256)"
                ),
            };
            let pem = match (&issuer.public_key_pem, &issuer.public_key_file) {
                (Some(text), _) => Some(text.clone()),
                (None, Some(path)) => Some(std::fs::read_to_string(path)?),
                _ => None,
            };
            let jwks: Option<JwkSet> = match (&issuer.jwks_file, &issuer.jwks_url) {
                (Some(path), _) => Some(serde_json::from_str(&std::fs::read_to_string(path)?)?),
                (None, Some(url)) => {
                    Some(reqwest::get(url).await?.error_for_status()?.json().await?)
                }
                _ => None,
            };
            let keys = match (algorithm, &issuer.secret, pem, jwks) {
                (Algorithm::HS256, Some(secret), _, _) => Keys::One(DecodingKey::from_secret(secret.expose().as_bytes())),
                (Algorithm::RS256, _, Some(pem), _) => Keys::One(DecodingKey::from_rsa_pem(pem.as_bytes())?),
                (Algorithm::ES256, _, Some(pem), _) => Keys::One(DecodingKey::from_ec_pem(pem.as_bytes())?),
                (Algorithm::RS256 | Algorithm::ES256, _, None, Some(set)) => Keys::ByKid(
                    set.keys
                        .iter()
                        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
                        .collect(),
                ),
                _ => anyhow::bail!(
                    "auth.jwt_issuers `{}`: HS256 needs `secret`; RS256/ES256 need a public key or a JWKS",
                    issuer.issuer
                ),
            };
            issuers.push(Issuer {
                config: issuer.clone(),
                algorithm,
                keys,
            });
        }
        Ok(Issuers { issuers })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a token and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Identity, Error> {
        let header = decode_header(token)
            .map_err(|_| refused("malformed header or unsupported algorithm"))?;
        // RFC 7515 §4.1.11: a token whose `crit` names an extension the recipient does not
        // understand must be rejected. The gateway understands none, so any `crit` is refused
        // (the header parser above would silently ignore it).
        let raw_header = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h.trim_end_matches('='))
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .ok_or_else(|| refused("malformed header"))?;
        if raw_header.get("crit").is_some() {
            return Err(refused(
                "critical header extensions (crit) are not supported",
            ));
        }
        // The issuer is read unverified only to choose the key; the signature check below
        // then binds it.
        let payload = token
            .split('.')
            .nth(1)
            .ok_or_else(|| refused("malformed"))?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| refused("malformed payload"))?;
        let unverified: Value =
            serde_json::from_slice(&payload).map_err(|_| refused("malformed payload"))?;
        let iss = string_claim(&unverified, "iss")?.ok_or_else(|| refused("no issuer"))?;
        check_registered_claims(&unverified)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| refused("unknown issuer"))?;
        if header.alg != issuer.algorithm {
            return Err(refused("algorithm not allowed for this issuer"));
        }
        let key = match &issuer.keys {
            Keys::One(key) => key,
            Keys::ByKid(keys) => {
                let kid = header.kid.as_deref().ok_or_else(|| refused("no key id"))?;
                &keys
                    .iter()
                    .find(|(k, _)| k == kid)
                    .ok_or_else(|| refused("unknown key id"))?
                    .1
            }
        };
        let mut validation = Validation::new(issuer.algorithm);
        validation.set_issuer(&[issuer.config.issuer.as_str()]);
        validation.set_audience(&[issuer.config.audience.as_str()]);
        validation.leeway = issuer.config.leeway_secs.unwrap_or(30);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Value>(token, key, &validation)
            .map_err(|e| refused(&e.to_string()))?
            .claims;
        let tenant_claim = issuer.config.tenant_claim.as_deref().unwrap_or("tenant");
        let tenant = string_claim(&claims, tenant_claim)?
            .map(|t| {
                TenantId::parse(t).ok_or_else(|| refused("the tenant claim is not a tenant id"))
            })
            .transpose()?;
        let end_user = match &issuer.config.user_claim {
            Some(claim) => string_claim(&claims, claim)?
                .map(|u| {
                    EndUserId::parse(u)
                        .ok_or_else(|| refused("the end-user claim is not a valid user id"))
                })
                .transpose()?,
            None => None,
        };
        let admin = match (&issuer.config.admin_claim, &issuer.config.admin_value) {
            (Some(claim), Some(value)) => strings_claim(&claims, claim)?
                .is_some_and(|roles| roles.iter().any(|role| role == value)),
            _ => false,
        };
        let scopes = scope_claim(&claims)?;
        let mode = match issuer.config.mode.as_deref() {
            Some("test") => Mode::Test,
            _ => Mode::Live,
        };
        let subject = string_claim(&claims, "sub")?.unwrap_or("");
        let digest = hex::encode(Sha256::digest(format!("{iss}\n{subject}").as_bytes()));
        Ok(Identity {
            tenant,
            end_user,
            admin,
            scopes,
            mode,
            key_id: ApiKeyId::from_db(format!("key_jwt{}", &digest[..24])),
        })
    }
}

/// The latest NumericDate accepted, 9999-12-31T23:59:59Z: later ones are not dates any
/// clock will reach, and jsonwebtoken reads a value it cannot hold as a missing claim.
const LATEST_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Checks the types of the registered claims jsonwebtoken reads, which it would otherwise
/// take as absent: an unparsable `exp` is reported as missing and an unparsable `nbf` is not
/// checked at all.
/// Run on the unverified payload, so that the refusal says what is wrong; the signature is
/// checked afterwards all the same.
fn check_registered_claims(claims: &Value) -> Result<(), Error> {
    for name in ["exp", "nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(Value::Number(n))
                if n.as_f64()
                    .is_some_and(|t| (0.0..=LATEST_NUMERIC_DATE).contains(&t)) => {}
            Some(_) => {
                return Err(refused(&format!(
                    "`{name}` is not a valid NumericDate (a number of seconds since \
                     1970-01-01T00:00:00Z, at most 9999-12-31T23:59:59Z)"
                )))
            }
        }
    }
    // jsonwebtoken reads `sub` and `aud` too, and fails on a wrong type with a parser error.
    string_claim(claims, "sub")?;
    strings_claim(claims, "aud")?;
    Ok(())
}

/// A claim that must be a string when present.
fn string_claim<'a>(claims: &'a Value, name: &str) -> Result<Option<&'a str>, Error> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(refused(&format!("the `{name}` claim must be a string"))),
    }
}

/// A claim that must be a string or an array of strings when present.
fn strings_claim<'a>(claims: &'a Value, name: &str) -> Result<Option<Vec<&'a str>>, Error> {
    let wrong = || {
        refused(&format!(
            "the `{name}` claim must be a string or an array of strings"
        ))
    };
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(vec![text.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(wrong))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// The `scope` claim: absent means the token is not limited; a string is space-separated
/// (RFC 8693 §4.2), an array lists one scope per member. Any scope the gateway does not
/// know refuses the token rather than being dropped, so that a typo never widens or
/// silently narrows what the issuer meant.
fn scope_claim(claims: &Value) -> Result<Option<Vec<Scope>>, Error> {
    let names = match claims.get("scope") {
        None => return Ok(None),
        Some(Value::String(text)) => text.split_whitespace().collect(),
        Some(Value::Array(_)) => strings_claim(claims, "scope")?.unwrap_or_default(),
        Some(_) => {
            return Err(refused(
                "the `scope` claim must be a space-separated string or an array of strings",
            ))
        }
    };
    names
        .into_iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                let shown: String = name.chars().take(64).collect();
                refused(&format!(
                    "the `scope` claim names an unknown scope `{shown}`"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A bearer credential that looks like a JWT rather than a gateway key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("sgw_")
}
