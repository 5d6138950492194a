//! Who is calling: the bearer credential off the request, judged by `domain::auth`, with
//! failed attempts throttled per client address.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::domain::tenants::Principal;
use crate::error::Error;
use crate::http::AppState;

/// The authenticated tenant caller of a `/v1` route.
pub struct Caller(pub Principal);

/// The authenticated operator of an `/admin/v1` route.
pub struct Operator;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let principal = match crate::domain::auth::caller(state, bearer(parts)).await {
            Ok(principal) => principal,
            Err(refusal @ Error::Unauthorized(..)) => {
                // Too many failures from one address are throttled before they are answered.
                // Only a credential that was checked and refused counts: a lookup that could
                // not run (the database is unavailable) is no evidence against the caller.
                crate::domain::limits::failed_auth(state, &client_address(parts)).await?;
                return Err(refusal);
            }
            Err(other) => return Err(other),
        };
        crate::domain::limits::admit_request(state, &principal).await?;
        crate::domain::auth::note_key_use(state, &principal);
        Ok(Caller(principal))
    }
}

/// The calling client's address, as the server saw it.
fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts).ok_or(Error::Unauthorized(
            "missing_admin_token",
            "send the operator token as `Authorization: Bearer …`".into(),
        ))?;
        if crate::domain::auth::is_operator(state, token).await? {
            return Ok(Operator);
        }
        crate::domain::limits::failed_auth(state, &client_address(parts)).await?;
        Err(Error::Unauthorized(
            "invalid_admin_token",
            "the admin token is invalid".into(),
        ))
    }
}
