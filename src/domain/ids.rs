//! Typed identifiers. Every id the API shows carries a prefix naming its kind
//! (`video_…`, `ten_…`, `key_…`), so one can never be mistaken for another.

use std::fmt;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random base62 text of `len` characters from the operating system's CSPRNG.
pub fn random_token(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, random_token(24)))
            }

            /// Accepts only well-formed ids of this kind: the prefix, then 1-64 ASCII
            /// alphanumerics.
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix($prefix)?;
                let ok = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| $name(raw.to_string()))
            }

            /// Wraps an id read back from the database, which was validated when written.
            pub fn from_db(raw: String) -> Self {
                $name(raw)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(VideoId, "video_");
prefixed_id!(TenantId, "ten_");
prefixed_id!(ApiKeyId, "key_");
prefixed_id!(TxnId, "txn_");

/// An end user of a tenant, as the tenant names it (the `user` field). Opaque to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndUserId(String);

impl EndUserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':')
            });
        ok.then(|| EndUserId(raw.to_string()))
    }

    pub fn from_db(raw: String) -> Self {
        EndUserId(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_their_own_kind() {
        let id = VideoId::generate();
        assert!(VideoId::parse(id.as_str()).is_some());
        assert!(TenantId::parse(id.as_str()).is_none());
        assert!(VideoId::parse("video_").is_none());
        assert!(VideoId::parse("video_abc/../x").is_none());
    }

    #[test]
    fn end_user_ids_refuse_control_characters() {
        assert!(EndUserId::parse("user-42@example.com").is_some());
        assert!(EndUserId::parse("a\nb").is_none());
        assert!(EndUserId::parse("").is_none());
    }
}
