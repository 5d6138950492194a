//! HTTP plumbing shared by the reseller adapters: one client per provider with a timeout,
//! credentials that never reach a log or an error, and one classification of failures:
//!
//! | upstream answer                          | meaning                                  |
//! |------------------------------------------|------------------------------------------|
//! | 400, 404, 422 about the client's content | refused: the client's 400 (moderation, an input it cannot fetch) |
//! | 400, 404, 422 otherwise                  | unsupported there: another provider may serve it |
//! | 413                                      | refused: the client's 400                |
//! | 401, 403                                 | the provider is misconfigured            |
//! | 402                                      | the gateway's account there is empty     |
//! | 429                                      | transient, honouring `Retry-After`       |
//! | 5xx, no connection, bad error body       | transient                                |
//! | timeout or reset after sending, unreadable 2xx | outcome unknown: it may have been done |
//!
//! A caller may take some other statuses as answers ([`Upstream::send_accepting`]): AIgateway
//! answers 304 to a poll that comes too soon, meaning "nothing new".
//!
//! Retries are not made here: the job worker reschedules a transient failure with exponential
//! backoff and jitter, counting attempts in the database, so a retry survives a restart and is
//! never hidden inside one call.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::{Secret, UpstreamConfig};
use crate::providers::ProviderError;

/// How a provider expects its key.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    Bearer,
    Header(&'static str),
}

pub struct Upstream {
    pub name: &'static str,
    client: reqwest::Client,
    base: String,
    key: Secret,
    auth: Auth,
}

/// A successful answer: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    /// Parses the body. A success answer that cannot be read leaves the outcome unknown: the
    /// upstream said it did something, but not what.
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::OutcomeUnknown(format!("{name} sent an unreadable answer ({e})"))
        })
    }
}

impl Upstream {
    pub fn new(
        name: &'static str,
        config: &UpstreamConfig,
        default_base: &str,
        auth: Auth,
    ) -> anyhow::Result<Upstream> {
        let key = config.resolve_key(name)?;
        let timeout = Duration::from_secs(config.timeout_secs.unwrap_or(30).max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("seedance-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let base = config
            .base_url
            .clone()
            .unwrap_or_else(|| default_base.to_string())
            .trim_end_matches('/')
            .to_string();
        Ok(Upstream {
            name,
            client,
            base,
            key,
            auth,
        })
    }

    pub fn key(&self) -> &Secret {
        &self.key
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match self.auth {
            Auth::Bearer => builder.bearer_auth(self.key.expose()),
            Auth::Header(name) => builder.header(name, self.key.expose()),
        }
    }

    /// Sends a request and classifies the outcome. `error_text` extracts the provider's own
    /// error message from an error body.
    pub async fn send(
        &self,
        request: RequestBuilder,
        error_text: fn(&[u8]) -> Option<String>,
    ) -> Result<Answer, ProviderError> {
        self.send_accepting(request, error_text, &[]).await
    }

    /// Like [`Upstream::send`], but an answer with a status in `also_ok` is returned, for the
    /// caller to read its `status`, instead of being classified as a failure.
    pub async fn send_accepting(
        &self,
        request: RequestBuilder,
        error_text: fn(&[u8]) -> Option<String>,
        also_ok: &[StatusCode],
    ) -> Result<Answer, ProviderError> {
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                // Nothing reached the upstream.
                ProviderError::Transient {
                    message: format!("{} could not be reached", self.name),
                    retry_after: None,
                }
            } else if e.is_timeout() {
                ProviderError::OutcomeUnknown(format!("{} timed out", self.name))
            } else {
                ProviderError::OutcomeUnknown(format!(
                    "{} dropped the connection before answering",
                    self.name
                ))
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|_| {
            let message = format!("{} broke off its answer", self.name);
            if status.is_success() {
                ProviderError::OutcomeUnknown(message)
            } else {
                ProviderError::Transient {
                    message,
                    retry_after: None,
                }
            }
        })?;
        if status.is_success() || also_ok.contains(&status) {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        let detail = error_text(&body).map(|m| self.sanitize(&m));
        let with_detail = |what: String| match &detail {
            Some(d) => format!("{what}: {d}"),
            None => what,
        };
        Err(match status.as_u16() {
            413 => {
                ProviderError::Rejected(with_detail(format!("{} refused the request", self.name)))
            }
            400 | 404 | 422 => {
                let message = with_detail(format!("{} refused the request", self.name));
                if about_client_content(detail.as_deref()) {
                    ProviderError::Rejected(message)
                } else {
                    ProviderError::Unsupported(message)
                }
            }
            // Some providers (AI/ML API) answer an empty account with 403: its text says so.
            401 | 403 if !about_credit(detail.as_deref()) => ProviderError::Unavailable(format!(
                "{} refused the gateway's credentials",
                self.name
            )),
            401 | 403 => ProviderError::Unavailable(with_detail(format!(
                "the gateway's account at {} is out of credit",
                self.name
            ))),
            402 => ProviderError::Unavailable(format!(
                "the gateway's account at {} is out of credit",
                self.name
            )),
            429 => ProviderError::Transient {
                message: format!("{} is rate limiting", self.name),
                retry_after: retry_after(&headers),
            },
            _ => ProviderError::Transient {
                message: format!("{} failed with HTTP {}", self.name, status.as_u16()),
                retry_after: retry_after(&headers),
            },
        })
    }

    /// A provider's own message, made safe to show a client: printable, short, and without
    /// the gateway's key.
    fn sanitize(&self, message: &str) -> String {
        let cleaned: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        cleaned.replace(self.key.expose(), "[redacted]")
    }
}

/// Whether an upstream's refusal is about the client's own content (moderation, an input it
/// could not fetch), which no other provider would take either, rather than about what the
/// provider offers (a model, length, resolution, ratio or field), which another may. An
/// unexplained refusal counts as the provider's: trying the next candidate costs a refused
/// call, while answering 400 could turn away a request another provider serves.
pub fn about_client_content(detail: Option<&str>) -> bool {
    const CONTENT: [&str; 14] = [
        "moderat",
        "safety",
        "nsfw",
        "sensitive",
        "inappropriate",
        "violat",
        "policy",
        "prompt",
        "download",
        "fetch",
        "unreachable",
        "inaccessible",
        "could not load",
        "cannot access",
    ];
    let Some(detail) = detail else {
        return false;
    };
    let detail = detail.to_lowercase();
    CONTENT.iter().any(|word| detail.contains(word))
}

/// Whether an upstream's 401/403 text is about the account's money rather than the key.
fn about_credit(detail: Option<&str>) -> bool {
    detail.is_some_and(|d| {
        let d = d.to_lowercase();
        [
            "credit",
            "balance",
            "insufficient",
            "quota",
            "top up",
            "billing",
            "payment",
        ]
        .iter()
        .any(|word| d.contains(word))
    })
}

/// `Retry-After` as seconds (an HTTP date is read as "soon").
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    Some(crate::types::time::retry_after(value))
}

/// Percent-encodes an upstream id for use as one path segment.
pub fn path_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Error text in the common shapes: `{"error": "..."}`, `{"error": {"message": ...}}`,
/// `{"message": ...}`.
pub fn common_error_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = &value["error"];
    error
        .as_str()
        .or_else(|| error["message"].as_str())
        .or_else(|| value["message"].as_str())
        .or_else(|| value["error_message"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_about_content_are_told_from_refusals_about_the_offer() {
        for content in [
            "Generation blocked by content moderation",
            "INVALID_PROMPT: Prompt missing or invalid",
            "could not download image_url",
            "The image URL is unreachable",
            "request violates our usage policy",
        ] {
            assert!(about_client_content(Some(content)), "{content}");
        }
        for offer in [
            "Unknown model: bytedance/seedance-2.0",
            "resolution must be 480p or 720p for this model",
            "duration must be 5, 10, or 15",
            "unknown field: image_url",
            "Invalid request",
        ] {
            assert!(!about_client_content(Some(offer)), "{offer}");
        }
        assert!(!about_client_content(None));
    }

    #[test]
    fn error_text_is_found_in_the_common_shapes() {
        assert_eq!(
            common_error_text(br#"{"error":"bad"}"#).as_deref(),
            Some("bad")
        );
        assert_eq!(
            common_error_text(br#"{"error":{"message":"worse","type":"x"}}"#).as_deref(),
            Some("worse")
        );
        assert_eq!(common_error_text(b"<html>"), None);
    }
}
