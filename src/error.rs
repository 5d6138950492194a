//! The one error type of the gateway. Every layer returns it; the HTTP edge maps each
//! variant, in one `match` (`http::error`), to a status, a stable `code` and the envelope
//! `{"error": {"type", "code", "message", "param"}}`. Nothing here knows HTTP.

use crate::types::money::Credits;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("{message}")]
    UnsupportedCapability {
        message: String,
        param: Option<String>,
    },
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Existed, but no longer (expired content).
    #[error("{1}")]
    Gone(&'static str, String),
    #[error("insufficient credits: this request needs {needed}, {available} available")]
    InsufficientCredits { needed: Credits, available: Credits },
    #[error("{1}")]
    Conflict(&'static str, String),
    /// A request rate was exceeded (429), with the rate's headers.
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
        /// Requests per minute, for the `RateLimit` headers.
        limit: u32,
    },
    /// A limit was reached (429): the code says which, `retry_after` when it will pass.
    #[error("{message}")]
    QuotaExceeded {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
    #[error("the request body is larger than this gateway accepts (server.max_body_bytes)")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request took too long")]
    Timeout,
    #[error("{0}")]
    UpstreamUnavailable(String),
    #[error("the gateway is shutting down")]
    Draining,
    /// The database is unreachable, locked by another process or damaged: retry later (503).
    #[error("the gateway's database is unavailable ({reason}); retry shortly")]
    DatabaseUnavailable {
        reason: &'static str,
        cause: anyhow::Error,
    },
    /// The request's transaction kept losing conflicts with concurrent ones (a deadlock or a
    /// serialization failure, each rolled back) after every attempt: nothing was changed;
    /// retry shortly (503). The database itself is fine.
    #[error(
        "the database is busy: this request's transaction conflicted with concurrent ones on \
         each of {attempts} attempts and was rolled back, so nothing was changed; retry shortly"
    )]
    DatabaseBusy { attempts: u32, cause: anyhow::Error },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    pub fn invalid_body(message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// The request field at fault, when there is one.
    pub fn param(&self) -> Option<String> {
        match self {
            Error::InvalidRequest { param, .. } | Error::UnsupportedCapability { param, .. } => {
                param.clone()
            }
            _ => None,
        }
    }
}

impl From<crate::storage::DbError> for Error {
    /// Classified when answered (see `http::error`): an unavailable database is a 503.
    fn from(error: crate::storage::DbError) -> Self {
        Error::Internal(anyhow::Error::new(error).context("database"))
    }
}

impl crate::storage::Conflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Internal(cause) if cause.is_conflict())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
