//! `Idempotency-Key` with Stripe's semantics, on `POST /v1/videos` and the operator's money
//! endpoints. Keys are scoped (to the tenant, or to the operator) and kept 24 hours:
//!
//! - the same key with the same body replays the first answer (status, body, headers);
//! - the same key with another body is 409 `idempotency_conflict`;
//! - a duplicate arriving while the first is in flight waits for its answer (up to 15 s),
//!   else gets 409 `idempotency_in_progress` — never a second job.
//!
//! The key row is inserted in the same transaction as the job and its hold, so a job exists
//! exactly when its key does; the answer is stored as soon as it is known. A request that fails
//! before anything is created (bad input, insufficient credits) stores nothing, so the client
//! may retry it with the same key once it has fixed the cause.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::storage::sql::Exec;
use crate::storage::{now_ms, Db};

pub const TTL_MS: i64 = 24 * 3600 * 1000;
const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1-255 printable ASCII characters.
    pub fn parse(raw: &str) -> Result<IdempotencyKey, Error> {
        let ok =
            !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| (0x21..0x7f).contains(&b));
        if ok {
            Ok(IdempotencyKey(raw.to_string()))
        } else {
            Err(Error::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 printable characters without spaces",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, for comparing a repeated key's body with the first one's.
pub fn request_hash(request: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// One idempotent request in progress: where the key lives and what the request was.
#[derive(Debug, Clone)]
pub struct Claim {
    pub scope: String,
    pub key: IdempotencyKey,
    pub hash: String,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// What to do with a request that carries a key.
pub enum Outcome {
    /// First use: run the request, inserting the key with what it creates.
    Proceed,
    Replay(StoredAnswer),
}

/// Looks the key up; waits for an in-flight first request's answer.
pub async fn check(db: &Db, claim: &Claim) -> Result<Outcome, Error> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let Some(row) = db
            .idempotency_row(&claim.scope, claim.key.as_str(), now_ms())
            .await?
        else {
            return Ok(Outcome::Proceed);
        };
        if row.request_hash != claim.hash {
            return Err(Error::Conflict(
                "idempotency_conflict",
                "this Idempotency-Key was used with a different request".into(),
            ));
        }
        if let Some(answer) = row.answer {
            return Ok(Outcome::Replay(answer));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Conflict(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts the key in the transaction that creates the request's effects. A concurrent first
/// use of the same key makes this fail with [`Error::Conflict`] `idempotency_race`; the caller
/// then waits for that request's answer.
pub async fn insert(ex: &mut Exec<'_>, claim: &Claim, video_id: Option<&str>) -> Result<(), Error> {
    match Db::insert_idempotency_key(
        ex,
        &claim.scope,
        claim.key.as_str(),
        &claim.hash,
        video_id,
        now_ms(),
        TTL_MS,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if crate::storage::is_unique_violation(&e) => Err(Error::Conflict(
            "idempotency_race",
            "a request with this Idempotency-Key is already being processed".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
