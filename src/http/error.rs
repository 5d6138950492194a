//! How an error is answered: each variant of [`Error`] maps, in one `match`, to an HTTP
//! status and a stable `code`; the body is always the envelope
//! `{"error": {"type", "code", "message", "param"}}`. A 5xx is logged once with its cause and
//! its details never reach the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// The error envelope every non-2xx answer carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"type": "invalid_request_error", "code": "invalid_request", "message": "seconds must be an integer from 4 to 15", "param": "seconds"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Broad class: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `billing_error`, `conflict_error`, `rate_limit_error`,
    /// `upstream_error`, `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable machine-readable code, e.g. `invalid_request`, `insufficient_credits`.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

impl Error {
    pub fn status_and_code(&self) -> (StatusCode, &'static str, &'static str) {
        use Error::*;
        match self {
            InvalidRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            UnsupportedCapability { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_capability",
            ),
            Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, "authentication_error", code),
            Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", "forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error", "not_found"),
            Gone(code, _) => (StatusCode::GONE, "not_found_error", code),
            InsufficientCredits { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "billing_error",
                "insufficient_credits",
            ),
            Conflict(code, _) => (StatusCode::CONFLICT, "conflict_error", code),
            QuotaExceeded { code, .. } | RateLimited { code, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code)
            }
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "unsupported_media_type",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_timeout",
            ),
            UpstreamUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                "upstream_unavailable",
            ),
            Draining => (StatusCode::SERVICE_UNAVAILABLE, "server_error", "draining"),
            DatabaseUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "database_unavailable",
            ),
            DatabaseBusy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "database_busy",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
            ),
        }
    }
}

impl Error {
    /// An internal error whose cause is an unavailable database becomes that 503, whichever
    /// path wrapped it (a storage error, or one inside an `anyhow` chain); one whose cause is
    /// a transaction that lost its conflicts (transactions that move money were already run
    /// again) becomes the 503 that says so.
    fn classified(self) -> Error {
        use crate::storage::Conflict;
        let Error::Internal(cause) = self else {
            return self;
        };
        if cause.is_conflict() {
            return Error::DatabaseBusy {
                attempts: crate::storage::CONFLICT_ATTEMPTS,
                cause,
            };
        }
        let kind = crate::storage::unavailability_in(&cause);
        match kind {
            Some(kind) => Error::DatabaseUnavailable {
                reason: kind.reason(),
                cause,
            },
            None => Error::Internal(cause),
        }
    }
}

/// The `code` of an error response, left on the response for the metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let this = self.classified();
        let (status, kind, code) = this.status_and_code();
        let message = match &this {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "the gateway failed to handle this request; it has been logged".to_string()
            }
            Error::DatabaseUnavailable { cause, reason } => {
                tracing::warn!(error = %format!("{cause:#}"), reason, "database unavailable");
                this.to_string()
            }
            Error::DatabaseBusy { cause, attempts } => {
                tracing::warn!(error = %format!("{cause:#}"), attempts, "transaction kept conflicting");
                this.to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                kind,
                code,
                message,
                param: this.param(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(code));
        if matches!(this, Error::Draining | Error::DatabaseUnavailable { .. }) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(this, Error::DatabaseBusy { .. }) {
            // The conflict is over as soon as the transactions it was with are.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Error::RateLimited {
            retry_after_secs,
            limit,
            ..
        } = &this
        {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            if let Ok(policy) = HeaderValue::from_str(&format!("{limit};w=60")) {
                headers.insert("ratelimit-policy", policy);
            }
            if let Ok(state) = HeaderValue::from_str(&format!(
                "limit={limit}, remaining=0, reset={retry_after_secs}"
            )) {
                headers.insert("ratelimit", state);
            }
        }
        if let Error::QuotaExceeded {
            retry_after_secs: Some(secs),
            ..
        } = &this
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{database_error, database_error_saying, pool_timed_out};

    async fn answer(error: Error) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&body).unwrap_or_default();
        (status, retry_after, body)
    }

    #[tokio::test]
    async fn a_deadlock_is_answered_as_a_busy_database_not_an_unreachable_one() {
        for code in ["40P01", "40001"] {
            let (status, retry_after, body) = answer(database_error(code).into()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(retry_after.as_deref(), Some("1"), "{code}");
            assert_eq!(body["error"]["code"], "database_busy", "{code}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("conflicted") && message.contains("nothing was changed"),
                "{message}"
            );
            assert!(!message.contains("unreachable"), "{message}");
        }
    }

    #[tokio::test]
    async fn a_database_out_of_reach_is_still_answered_as_unavailable() {
        let (status, retry_after, body) = answer(pool_timed_out().into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert_eq!(body["error"]["code"], "database_unavailable");
    }

    /// Each way PostgreSQL says "not now" (storage's tests list every code of each class) is
    /// a 503 with `Retry-After`, never a 500.
    #[tokio::test]
    async fn every_way_the_database_says_not_now_is_a_503_with_retry_after() {
        let refusing = database_error_saying(
            "55000",
            "database \"gw\" is not currently accepting connections",
        );
        for (class, error) in [
            ("connection exception", database_error("08006")),
            ("insufficient resources", database_error("53300")),
            ("shutting down", database_error("57P01")),
            ("starting up", database_error("57P03")),
            ("not accepting connections", refusing),
        ] {
            let (status, retry_after, body) = answer(error.into()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{class}");
            assert_eq!(retry_after.as_deref(), Some("5"), "{class}");
            assert_eq!(body["error"]["code"], "database_unavailable", "{class}");
        }
        let (status, _, body) = answer(database_error("42P01").into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
    }
}
