//! Reading `SEEDANCE_GW_*` environment variables. figment reads each value with its own
//! TOML-like syntax, which takes `[1, 2]` and `{a = 1}` but turns JSON objects (`{"a": 1}`)
//! and so a JSON array of tables into a plain string, refused later as "expected a sequence".
//! A value written as a JSON or TOML array or table is therefore parsed here as such, so that
//! every list- or table-valued setting takes the JSON and TOML forms the configuration
//! reference documents; every other value is left to figment.

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// The environment layer: figment's reading of every variable, then the structured values
/// on top of it.
pub(super) fn layer(figment: figment::Figment, prefix: &str, ignore: &[&str]) -> figment::Figment {
    let env = Env::prefixed(prefix).ignore(ignore).split("__");
    let structured: Vec<StructuredValue> = env
        .iter()
        .filter_map(|(key, raw)| {
            let value = parse_structured(&raw)?;
            Some(StructuredValue {
                variable: format!("{prefix}{}", key.as_str().replace('.', "__")).to_uppercase(),
                key: key.as_str().to_owned(),
                value,
            })
        })
        .collect();
    // A later provider replaces what an earlier one gave for the same key (an array or a
    // table replaces figment's string as a whole).
    structured
        .into_iter()
        .fold(figment.merge(env), |figment, value| figment.merge(value))
}

/// One variable whose value is a JSON or TOML array or table.
struct StructuredValue {
    variable: String,
    key: String,
    value: Value,
}

impl Provider for StructuredValue {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("`{}` environment variable", self.variable))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let nested = figment::util::nest(&self.key, self.value.clone());
        let dict = nested
            .into_dict()
            .ok_or_else(|| Error::from(format!("`{}` names no key", self.variable)))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// The value of `raw` when it is a JSON or a TOML array or table; `None` for anything else
/// (left to figment, including the forms of its own syntax neither JSON nor TOML accepts).
fn parse_structured(raw: &str) -> Option<Value> {
    let trimmed = raw.trim();
    if !(trimmed.starts_with('[') || trimmed.starts_with('{')) {
        return None;
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(trimmed) {
        return Value::serialize(json).ok();
    }
    // A TOML value is only valid on the right of a key; the document must hold that one key
    // and nothing else, so that no other setting slips in through a newline.
    let document: toml::Table = toml::from_str(&format!("value = {trimmed}")).ok()?;
    match document.into_iter().collect::<Vec<_>>().as_slice() {
        [(_, value)] if value.is_array() || value.is_table() => Value::serialize(value).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_arrays_and_tables_are_parsed_as_such() {
        let issuers =
            r#"[{"issuer": "https://idp.example.com", "audience": "gw", "leeway_secs": 5}]"#;
        let toml_issuers =
            r#"[{issuer = "https://idp.example.com", audience = "gw", leeway_secs = 5}]"#;
        for raw in [issuers, toml_issuers] {
            let value = parse_structured(raw).expect("an array");
            let items = value.into_array().expect("an array");
            let first = items[0].clone().into_dict().expect("a table");
            assert_eq!(
                first.get("issuer").and_then(Value::as_str),
                Some("https://idp.example.com")
            );
            assert_eq!(
                first
                    .get("leeway_secs")
                    .and_then(|v| v.deserialize::<u64>().ok()),
                Some(5)
            );
        }
        assert!(parse_structured(r#"{"seedance-2.0": 60}"#).is_some_and(|v| v.as_dict().is_some()));
        assert!(parse_structured(r#"{"seedance-2.0" = 60}"#).is_some_and(|v| v.as_dict().is_some()));
        assert!(parse_structured("[5, 300]").is_some_and(|v| v.as_array().is_some()));
    }

    #[test]
    fn other_values_are_left_to_figment() {
        for raw in [
            "8080",
            "text",
            "\"quoted\"",
            "[::1]:8080",
            "[a, b",
            "{not json}",
            "[1]\nother = 2",
        ] {
            assert!(parse_structured(raw).is_none(), "{raw}");
        }
    }
}
