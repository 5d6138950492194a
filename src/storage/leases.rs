//! SQL for the worker's leases on jobs and the guarded state transitions: claiming due jobs,
//! putting them back, recording the upstream's acceptance, failing over to another provider,
//! and the final states. Every status change is a compare-and-set on the statuses the caller
//! hands in (the domain's transition table: `domain::jobs::transitions`) and, for the worker,
//! on still holding the lease, so a late upstream result or a stale replica can never
//! overwrite a final state. When a job is next due is the caller's to say.
//!
//! Lease time is the database's: a lease is set to the database's clock plus its length and
//! is expired when the database's clock passes it ([`super::Backend::now_sql`], in the same
//! statement), never by a replica's own clock. Replicas whose machine clocks disagree by more
//! than a lease would otherwise each see the other's leases as expired (the one ahead takes
//! every job another holds, so both poll it at once) or as minutes away (the one behind waits
//! that long to take over the jobs of a replica that died). A fencing token was the
//! alternative: it keeps a stale holder's writes out, which the owner guard on every write
//! already does, but it does not stop the replica ahead from claiming, and polling upstream,
//! what another still holds; only one clock for leases does. Due times (`next_run_at`) are
//! written by the replicas, on clocks set to the database's (`crate::clock`).

use super::end_users::{FinishedJob, UsageChange};
use super::sql::{self, Get};
use super::videos::{status_in, video_from_row};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::{ProviderId, TenantId, VideoId};
use crate::types::money::ReportedCost;
use crate::types::money::{Credits, Mode};
use crate::types::video::{JobError, PollCause, Video, VideoStatus};

/// What a job's final-state update returns for the tenant's running totals.
const FINISHED: &str = "RETURNING tenant_id, mode, created_at, cost_reserved, seconds";

fn finished_from_row(row: &impl Get) -> Result<FinishedJob, DbError> {
    Ok(FinishedJob {
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        // A wrong mode would adjust another mode's totals: refuse it rather than guess.
        mode: row.state("mode", Mode::parse)?,
        created_at: row.col("created_at")?,
        cost_reserved: row.col("cost_reserved")?,
        seconds: row.col("seconds")?,
    })
}

/// When and why a leased job is next due, as the worker puts it back (see [`Db::reschedule`]).
pub struct Due {
    /// The instant it is due.
    pub at: i64,
    pub cause: PollCause,
    /// Progress the upstream reported, 0-99.
    pub progress: Option<i64>,
    /// Whether the step was a transient failure (counted toward giving up).
    pub count_attempt: bool,
    /// Requests the step made upstream.
    pub requests: i64,
    /// When the step's upstream request began: a webhook that arrived after it makes the job
    /// due at `confirm_at` instead, for its confirmation.
    pub step_started: Option<i64>,
    /// When the confirmation of a webhook that arrived during the step is due.
    pub confirm_at: i64,
}

impl Due {
    /// Due at `at` for `cause`, after a step that made no upstream request.
    pub fn at(at: i64, cause: PollCause) -> Due {
        Due {
            at,
            cause,
            progress: None,
            count_attempt: false,
            requests: 0,
            step_started: None,
            confirm_at: at,
        }
    }
}

/// The statuses the worker's claim works with, as the domain's transition table defines them:
/// jobs accepted upstream are polled, jobs waiting are submitted (in the tenants' fair order),
/// and the claim's guard is every status a job has not ended in.
#[derive(Debug, Clone, Copy)]
pub struct ClaimStatuses<'a> {
    pub upstream: &'a [VideoStatus],
    pub waiting: &'a [VideoStatus],
    pub in_flight: &'a [VideoStatus],
}

impl Db {
    /// Leases up to `limit` jobs due at `now` to `owner` for `lease_ms` of the database's
    /// clock (see the module's documentation), unless another holds them. Running jobs due for a
    /// poll come first, soonest due first, read from the due index without touching the
    /// others. Queued jobs fill the rest fairly across tenants: a queued job's turn is its
    /// tenant's running jobs plus its place in its tenant's line, and the lowest turn goes first
    /// (then the oldest), so a tenant that queues a thousand jobs delays another tenant's single
    /// job by at most one slot's turn. The conditional update makes each claim exclusive across
    /// replicas (a window function cannot be combined with `SKIP LOCKED`; a concurrent claim
    /// waits for the other's short transaction and then skips what it took).
    pub async fn claim_due_jobs(
        &self,
        owner: &str,
        (now, lease_ms, limit): (i64, i64, i64),
        statuses: ClaimStatuses<'_>,
    ) -> Result<Vec<Video>, DbError> {
        let db_now = self.backend().now_sql();
        let upstream = status_in("status", statuses.upstream);
        let waiting_v = status_in("v.status", statuses.waiting);
        let waiting = status_in("status", statuses.waiting);
        let in_flight = status_in("status", statuses.in_flight);
        let mut order: Vec<i64> = sql::query(format!(
            "SELECT seq FROM videos WHERE {upstream} AND next_run_at <= $1 \
               AND (lease_until IS NULL OR lease_until < {db_now}) \
             ORDER BY next_run_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| r.at::<i64>(0))
        .collect::<Result<_, _>>()?;
        let room = limit - order.len() as i64;
        let any_queued = room > 0
            && sql::query(format!(
                "SELECT 1 FROM videos WHERE {waiting} AND next_run_at <= $1 \
                   AND (lease_until IS NULL OR lease_until < {db_now}) LIMIT 1"
            ))
            .bind(now)
            .fetch_optional(&mut self.read()?)
            .await?
            .is_some();
        if any_queued {
            let queued: Vec<i64> = sql::query(format!(
                "SELECT seq FROM ( \
                     SELECT v.seq, ROW_NUMBER() OVER (PARTITION BY v.tenant_id ORDER BY v.seq) \
                       + COALESCE(r.running, 0) AS turn \
                     FROM videos v LEFT JOIN (SELECT tenant_id, COUNT(*) AS running FROM videos \
                       WHERE {upstream} GROUP BY tenant_id) r ON r.tenant_id = v.tenant_id \
                     WHERE {waiting_v} AND v.next_run_at <= $1 \
                       AND (v.lease_until IS NULL OR v.lease_until < {db_now})) due \
                 ORDER BY turn, seq LIMIT $2"
            ))
            .bind(now)
            .bind(room)
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(|r| r.at::<i64>(0))
            .collect::<Result<_, _>>()?;
            order.extend(queued);
        }
        if order.is_empty() {
            return Ok(Vec::new());
        }
        // The update checks again that each job is due and not leased: between the reads above
        // and this write another replica may have claimed a job, taken its step and put it
        // back, unleased but due later, and it must not be polled again at once.
        let placeholders: Vec<String> = (0..order.len()).map(|i| format!("${}", i + 4)).collect();
        let claim = format!(
            "UPDATE videos SET lease_owner = $1, lease_until = {db_now} + $2 \
             WHERE seq IN ({}) AND {in_flight} AND next_run_at <= $3 \
               AND (lease_until IS NULL OR lease_until < {db_now}) \
             RETURNING *",
            placeholders.join(", ")
        );
        let mut query = sql::query(claim).bind(owner).bind(lease_ms).bind(now);
        for seq in &order {
            query = query.bind(*seq);
        }
        let mut tx = self.begin().await?;
        let rows = query.fetch_all(&mut tx).await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|r| Ok((r.col::<i64>("seq")?, video_from_row(r)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        claimed.sort_by_key(|(seq, _)| order.iter().position(|s| s == seq));
        Ok(claimed.into_iter().map(|(_, video)| video).collect())
    }

    /// When a job in one of `running` last changed after an upstream request (`None`: it is
    /// in none of them), read in the transaction that makes it due (see [`Db::poll_soon`]).
    pub async fn last_job_step(
        tx: &mut Tx,
        id: &VideoId,
        running: &[VideoStatus],
    ) -> Result<Option<i64>, DbError> {
        sql::query(format!(
            "SELECT updated_at FROM videos WHERE id = $1 AND {}",
            status_in("status", running)
        ))
        .bind(id.as_str())
        .fetch_optional(tx)
        .await?
        .map(|row| row.at::<i64>(0))
        .transpose()
    }

    /// Makes a job in one of `running` due at `at` for the confirming poll of a webhook that
    /// arrived at `now`, if its last step is still `last_step` (as read by
    /// [`Db::last_job_step`]). False when it moved meanwhile: read it again. A leased job is
    /// not claimed again: the poll in flight sees `webhook_at` when it reschedules.
    pub async fn poll_soon(
        tx: &mut Tx,
        id: &VideoId,
        running: &[VideoStatus],
        last_step: i64,
        now: i64,
        at: i64,
    ) -> Result<bool, DbError> {
        let done = sql::query(format!(
            "UPDATE videos SET webhook_at = $1, poll_cause = $2, next_run_at = $3 \
             WHERE id = $4 AND updated_at = $5 AND {}",
            status_in("status", running)
        ))
        .bind(now)
        .bind(PollCause::Webhook.as_str())
        .bind(at)
        .bind(id.as_str())
        .bind(last_step)
        .execute(tx)
        .await?;
        Ok(done == 1)
    }

    /// Records the upstream's acceptance of a job (moving it from one of `from` to `to`) and
    /// releases the lease. Returns the job as stored, or `None` when it was no longer this
    /// owner's job in one of `from`.
    #[allow(clippy::too_many_arguments)] // The move's guard, the lease and what the upstream said.
    pub async fn mark_submitted(
        &self,
        id: &VideoId,
        owner: &str,
        (from, to): (&[VideoStatus], VideoStatus),
        provider: ProviderId,
        upstream_id: &str,
        due: Due,
        cost: Option<&ReportedCost>,
    ) -> Result<Option<Video>, DbError> {
        let now = now_ms();
        let Due {
            at: next_run_at,
            cause,
            requests,
            ..
        } = due;
        let mut writer = self.write().await?;
        let row = sql::query(format!(
            "UPDATE videos SET status = $11, provider = $1, upstream_id = $2, submitted_at = $3, \
             updated_at = $3, next_run_at = $4, lease_owner = NULL, lease_until = NULL, \
             upstream_cost = COALESCE($7, upstream_cost), upstream_cost_micro_usd = COALESCE($8, upstream_cost_micro_usd), \
             poll_cause = $9, webhook_at = NULL, upstream_requests = upstream_requests + $10 \
             WHERE id = $5 AND lease_owner = $6 AND {} RETURNING *",
            status_in("status", from)
        ))
        .bind(provider)
        .bind(upstream_id)
        .bind(now)
        .bind(next_run_at)
        .bind(id.as_str())
        .bind(owner)
        .bind(cost.map(|c| c.raw.as_str()))
        .bind(cost.and_then(|c| c.micro_usd).map(|m| m.get()))
        .bind(cause.as_str())
        .bind(requests)
        .bind(to.as_str())
        .fetch_optional(&mut writer)
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }

    /// Puts a leased job in one of `running` back to wait until its next due time, recording
    /// its progress and the `requests` just made upstream for it. When a webhook arrived while
    /// the job was leased (after `step_started`), the job is due at `confirm_at` instead, for
    /// its confirmation: the domain hands both times, the row says which applies.
    pub async fn reschedule(
        &self,
        id: &VideoId,
        owner: &str,
        running: &[VideoStatus],
        due: Due,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let done = sql::query(format!(
            "UPDATE videos SET progress = COALESCE($1, progress), updated_at = $3, \
             next_run_at = CASE WHEN webhook_at >= $7 THEN $8 ELSE $2 END, \
             poll_cause = CASE WHEN webhook_at >= $7 THEN $11 ELSE $9 END, \
             attempts = attempts + $4, upstream_requests = upstream_requests + $10, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND lease_owner = $6 AND {}",
            status_in("status", running)
        ))
        .bind(due.progress)
        .bind(due.at)
        .bind(now)
        .bind(i64::from(due.count_attempt))
        .bind(id.as_str())
        .bind(owner)
        .bind(due.step_started)
        .bind(due.confirm_at)
        .bind(due.cause.as_str())
        .bind(due.requests)
        .bind(PollCause::Webhook.as_str())
        .execute(&mut self.write().await?)
        .await?;
        Ok(done == 1)
    }

    /// Moves a leased job from one of `from` to `to` (completed), with its output and charge,
    /// and takes it out of its tenant's totals, changing them by `usage`. Returns the requests
    /// it made upstream; `None` when it is no longer in one of `from` or no longer leased to
    /// `owner` (nothing changed).
    #[allow(clippy::too_many_arguments)] // The move's guard, the lease and what the upstream said.
    pub async fn mark_completed(
        tx: &mut Tx,
        id: &VideoId,
        owner: &str,
        (from, to): (&[VideoStatus], VideoStatus),
        output_url: &str,
        charged: Credits,
        expires_at: i64,
        cost: Option<&ReportedCost>,
        usage: UsageChange,
    ) -> Result<Option<i64>, DbError> {
        let now = now_ms();
        let done = sql::query(format!(
            "UPDATE videos SET status = $9, progress = 100, output_url = $1, cost_charged = $2, \
             completed_at = $3, updated_at = $3, expires_at = $4, lease_owner = NULL, lease_until = NULL, \
             upstream_cost = COALESCE($7, upstream_cost), upstream_cost_micro_usd = COALESCE($8, upstream_cost_micro_usd), \
             upstream_requests = upstream_requests + 1 \
             WHERE id = $5 AND lease_owner = $6 AND {} {FINISHED}, upstream_requests",
            status_in("status", from)
        ))
        .bind(output_url)
        .bind(charged.get())
        .bind(now)
        .bind(expires_at)
        .bind(id.as_str())
        .bind(owner)
        .bind(cost.map(|c| c.raw.as_str()))
        .bind(cost.and_then(|c| c.micro_usd).map(|m| m.get()))
        .bind(to.as_str())
        .fetch_optional(tx)
        .await?;
        let Some(row) = done else {
            return Ok(None);
        };
        let finished = finished_from_row(&row)?;
        let requests: i64 = row.col("upstream_requests")?;
        Self::count_finished_job(tx, &finished, usage).await?;
        Self::free_slot(tx, id).await?;
        Ok(Some(requests))
    }

    /// Moves a job from one of `from` to `status` (failed or canceled), with nothing charged,
    /// and takes it out of its tenant's totals, changing them by `usage`. With `owner`, only
    /// while leased to it; with `tenant`, only that tenant's job. False: nothing changed.
    pub async fn mark_ended(
        tx: &mut Tx,
        id: &VideoId,
        (from, status): (&[VideoStatus], VideoStatus),
        error: Option<&JobError>,
        owner: Option<&str>,
        tenant: Option<&TenantId>,
        usage: UsageChange,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let done = sql::query(format!(
            "UPDATE videos SET status = $1, error_code = $2, error_message = $3, cost_charged = 0, \
             completed_at = $4, updated_at = $4, lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND {} AND ($6 IS NULL OR lease_owner = $6) AND ($7 IS NULL OR tenant_id = $7) {FINISHED}",
            status_in("status", from)
        ))
        .bind(status.as_str())
        .bind(error.map(|e| e.code.as_str()))
        .bind(error.map(|e| e.message.as_str()))
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .bind(tenant.map(TenantId::as_str))
        .fetch_optional(tx)
        .await?;
        let Some(finished) = done.as_ref().map(finished_from_row).transpose()? else {
            return Ok(false);
        };
        Self::count_finished_job(tx, &finished, usage).await?;
        Self::free_slot(tx, id).await?;
        Ok(true)
    }

    /// Queues a leased job that failed upstream again (moving it from one of `from` to `to`),
    /// at another provider, and gives back its slot, in one transaction.
    pub async fn requeue_elsewhere(
        &self,
        id: &VideoId,
        owner: &str,
        (from, to): (&[VideoStatus], VideoStatus),
        provider: ProviderId,
        fallbacks: &[ProviderId],
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let done = sql::query(format!(
            "UPDATE videos SET status = $6, provider = $1, fallbacks = $2, upstream_id = NULL, \
             submitted_at = NULL, progress = 0, next_run_at = $3, updated_at = $3, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND lease_owner = $5 AND {}",
            status_in("status", from)
        ))
        .bind(provider)
        .bind(serde_json::to_string(fallbacks).ok())
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .bind(to.as_str())
        .execute(&mut tx)
        .await?;
        if done != 1 {
            return Ok(false);
        }
        Self::free_slot(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves a leased, not yet submitted job in one of `running` to another provider, keeping
    /// the lease.
    pub async fn switch_provider(
        &self,
        id: &VideoId,
        owner: &str,
        running: &[VideoStatus],
        provider: ProviderId,
        fallbacks: &[ProviderId],
    ) -> Result<bool, DbError> {
        let done = sql::query(format!(
            "UPDATE videos SET provider = $1, fallbacks = $2, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND {}",
            status_in("status", running)
        ))
        .bind(provider)
        .bind(serde_json::to_string(fallbacks).ok())
        .bind(now_ms())
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut self.write().await?)
        .await?;
        Ok(done == 1)
    }
}
