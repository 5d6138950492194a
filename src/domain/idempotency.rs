//! `Idempotency-Key` with Stripe's semantics, on every POST that creates something or moves
//! money (`POST /v1/videos`, the end-user wallet, the operator's grants, adjustments and
//! refunds). Keys are scoped (to the tenant, or to the operator) and kept 24 hours:
//!
//! - the same key with the same body replays the first answer (status, body, headers);
//! - the same key with another body is 409 `idempotency_conflict`;
//! - a duplicate arriving while the first is in flight waits for its answer (up to
//!   `server.idempotency_wait_ms`, 15 s by default), else gets 409 `idempotency_in_progress`
//!   — never a second job.
//!
//! The key row is inserted in the same transaction as the job and its hold, so a job exists
//! exactly when its key does; the answer is stored as soon as it is known. A request that fails
//! before anything is created (bad input, insufficient credits) stores nothing, so the client
//! may retry it with the same key once it has fixed the cause.
//!
//! A key whose effects committed but whose answer was never stored (the process died between
//! the commit and the answer, or the request timed out) is not stuck: once its first request
//! can no longer be running (it is older than the request time limit), a repeat gets the
//! answer rebuilt from what the key created (the job, as it stands now), stored as the key's
//! answer from then on. Until then a repeat waits for the first answer as before.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::storage::{now_ms, Db, Tx};

/// A stored answer, as storage keeps it.
pub use crate::storage::idempotency::StoredAnswer;

pub const TTL_MS: i64 = 24 * 3600 * 1000;

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

/// What to do with a request that carries a key.
pub enum Outcome {
    /// First use: run the request, inserting the key with what it creates.
    Proceed,
    Replay(StoredAnswer),
    /// The key's request committed but its answer was lost: answer from what it created.
    Rebuild(Committed),
}

/// What a key's committed request created, to rebuild its answer from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The video a create made.
    pub video_id: Option<crate::types::ids::VideoId>,
}

/// What a request with an optional key comes to: its own first answer, the stored answer of
/// the key's first request, or what that request created when its answer was lost.
pub enum Answer<T> {
    First(T),
    Replay(StoredAnswer),
    Rebuild(Committed),
}

/// Runs `run` at most once per key: a stored answer is replayed without running it; a first
/// use runs it (it inserts the key with what it creates, see [`record`]); a concurrent first
/// use that wins the insert is waited for and its answer replayed. The caller stores the
/// answer of a first use with [`remember`].
///
/// `in_flight_ms` is the longest a first request can run (the request time limit): a key with
/// no answer that is older than that lost its answer, and is rebuilt. `wait` is the longest a
/// repeat waits for a first request's answer.
pub async fn once<T>(
    db: &Db,
    claim: Option<&Claim>,
    in_flight_ms: i64,
    wait: Duration,
    run: impl Future<Output = Result<T, Error>>,
) -> Result<Answer<T>, Error> {
    if let Some(claim) = claim {
        match check(db, claim, in_flight_ms, wait).await? {
            Outcome::Proceed => {}
            Outcome::Replay(answer) => return Ok(Answer::Replay(answer)),
            Outcome::Rebuild(committed) => return Ok(Answer::Rebuild(committed)),
        }
    }
    match (run.await, claim) {
        (Ok(first), _) => Ok(Answer::First(first)),
        (Err(Error::Conflict("idempotency_race", _)), Some(claim)) => {
            // Another request with this key got there first: answer as it did.
            match check(db, claim, in_flight_ms, wait).await? {
                Outcome::Replay(answer) => Ok(Answer::Replay(answer)),
                Outcome::Rebuild(committed) => Ok(Answer::Rebuild(committed)),
                Outcome::Proceed => Err(in_progress()),
            }
        }
        (Err(error), _) => Err(error),
    }
}

/// Stores the answer of a key's first request, for its repeats to replay.
pub async fn remember(db: &Db, claim: &Claim, answer: &StoredAnswer) -> Result<(), Error> {
    db.store_idempotent_answer(&claim.scope, claim.key.as_str(), answer)
        .await?;
    Ok(())
}

fn in_progress() -> Error {
    Error::Conflict(
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly".into(),
    )
}

/// Looks the key up; waits for an in-flight first request's answer, and rebuilds the answer
/// of one that can no longer be in flight.
pub async fn check(
    db: &Db,
    claim: &Claim,
    in_flight_ms: i64,
    wait: Duration,
) -> Result<Outcome, Error> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = now_ms();
        let Some(row) = db
            .idempotency_row(&claim.scope, claim.key.as_str(), now)
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
        if now.saturating_sub(row.created_at) > in_flight_ms {
            return Ok(Outcome::Rebuild(Committed {
                video_id: row.video_id.map(crate::types::ids::VideoId::from_db),
            }));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(in_progress());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts the key in the transaction that creates the request's effects. A concurrent first
/// use of the same key makes this fail with [`Error::Conflict`] `idempotency_race`; the caller
/// then waits for that request's answer.
pub async fn insert(tx: &mut Tx, claim: &Claim, video_id: Option<&str>) -> Result<(), Error> {
    match Db::insert_idempotency_key(
        tx,
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
        Err(e) if e.is_unique_violation() => Err(Error::Conflict(
            "idempotency_race",
            "a request with this Idempotency-Key is already being processed".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Inserts the key, when the request has one, in the transaction that moves the request's
/// money (see [`insert`]).
pub async fn record(tx: &mut Tx, claim: Option<&Claim>) -> Result<(), Error> {
    match claim {
        Some(claim) => insert(tx, claim, None).await,
        None => Ok(()),
    }
}
