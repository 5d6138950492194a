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

/// A new journal transaction's id.
pub fn new_txn_id() -> TxnId {
    TxnId::generate()
}

/// A new webhook outbox message's id (`msg_…`, as Standard Webhooks' `webhook-id`).
pub fn message_id() -> String {
    format!("msg_{}", random_token(27))
}

/// Declares the providers: one line each, its variant and its one name.
macro_rules! providers {
    ($($variant:ident => $name:literal,)+) => {
        /// One upstream the gateway knows. Its one name (`seedance-it`) is the same in the API,
        /// the configuration's provider lists, metrics and logs; the configuration's section
        /// name (`seedance_it`) is read as the same provider wherever a name is accepted.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProviderId {
            $($variant,)+
        }

        impl ProviderId {
            pub const ALL: [ProviderId; [$($name),+].len()] = [$(ProviderId::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => $name,)+
                }
            }
        }
    };
}

// Adding a provider adds its line here (docs/adding-a-provider.md).
providers! {
    SeedanceIt => "seedance-it",
    Apiframe => "apiframe",
    AiGateway => "aigateway",
    SeedanceApi => "seedanceapi",
    AimlApi => "aimlapi",
    Sandbox => "sandbox",
}

impl ProviderId {
    /// The provider's section in the configuration (`providers.seedance_it`): its name with
    /// `_` for `-`.
    pub fn config_section(self) -> String {
        self.as_str().replace('-', "_")
    }

    /// A provider by either spelling of its name, in any case; `None` when unknown.
    pub fn parse(raw: &str) -> Option<ProviderId> {
        let name = raw.trim().to_ascii_lowercase().replace('_', "-");
        ProviderId::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Every name, comma-separated, for messages that list the valid ones.
    pub fn all_names() -> String {
        ProviderId::ALL.map(ProviderId::as_str).join(", ")
    }
}

impl Serialize for ProviderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read strictly: a name the gateway does not know is an error, never a guess.
impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ProviderId::parse(&raw).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown provider `{raw}` (known: {})",
                ProviderId::all_names()
            ))
        })
    }
}

/// Providers sort by name, as they are listed to operators.
impl Ord for ProviderId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ProviderId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    fn a_provider_has_one_name_and_either_spelling_reads_as_it() {
        assert_eq!(
            ProviderId::parse("seedance_it"),
            Some(ProviderId::SeedanceIt)
        );
        assert_eq!(
            ProviderId::parse(" Seedance-IT "),
            Some(ProviderId::SeedanceIt)
        );
        assert_eq!(ProviderId::SeedanceIt.as_str(), "seedance-it");
        assert_eq!(ProviderId::SeedanceIt.config_section(), "seedance_it");
        assert_eq!(ProviderId::parse("nope"), None);
        for id in ProviderId::ALL {
            assert_eq!(ProviderId::parse(id.as_str()), Some(id));
            assert_eq!(ProviderId::parse(&id.config_section()), Some(id));
        }
    }

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
