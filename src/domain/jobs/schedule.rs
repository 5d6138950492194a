//! When a running job is next due upstream, and how failed calls back off.
//!
//! Polls cost upstream requests (counted against the operator's rate limits and, at some
//! resellers, billed), so the schedule asks as few as it can while noticing the end soon: the
//! first poll just after the provider's estimate, then a back-off with the job's age. A job
//! whose provider calls back is not on that schedule at all: it waits for the webhook, with
//! safety polls just past its expected end and then every `workers.safety_poll_secs`.

use std::time::Duration;

use rand::Rng;

use crate::domain::services::Services;
use crate::providers::Provider;
use crate::storage::now_ms;
use crate::types::ids::ProviderId;
use crate::types::video::{PollCause, Video};

/// Transient upstream failures tolerated before a job is failed.
pub(crate) const MAX_ATTEMPTS: i64 = 8;

/// The wait before the next poll of a running job. It backs off as the job ages — a quarter
/// of the job's age so far — between a floor (a quarter of the provider's poll interval, and
/// never under its minimum) and the configured poll interval. A young job is seen finishing
/// quickly; an old one costs few upstream calls.
pub fn poll_delay(provider: &dyn Provider, age: Duration) -> Duration {
    let ceiling = provider.poll_interval().max(provider.min_poll_interval());
    let floor = (provider.poll_interval() / 4)
        .max(provider.min_poll_interval())
        .min(ceiling);
    (age / 4).clamp(floor, ceiling)
}

/// When and why a running job is polled next, after a poll that found it still running.
///
/// A job whose provider calls back is not polled on the regular schedule: it waits for the
/// webhook, polled only as a safety net every `workers.safety_poll_secs`. The one exception is
/// a webhook's confirmation that found the job still running (the provider's status lagging
/// its webhook): one regular poll follows, then the safety schedule resumes.
pub(super) fn next_poll(
    state: &Services,
    provider: &dyn Provider,
    job: &Video,
) -> (i64, PollCause) {
    let now = now_ms();
    if !calls_back(state, provider, job) || job.poll_cause == PollCause::Webhook {
        let wait = poll_delay(provider, job_age(job));
        return (now + wait.as_millis() as i64, PollCause::Scheduled);
    }
    let wait = safety_interval(state).max(provider.min_poll_interval());
    // The last safety poll comes just before the hold timeout, not after it.
    let deadline = job.created_at_ms + (state.config.workers.hold_timeout_secs * 1000) as i64;
    let at = (now + wait.as_millis() as i64)
        .min(deadline - 1000)
        .max(now + 1000);
    (at, PollCause::Safety)
}

/// Whether the job's provider was handed a callback URL and will call it.
fn calls_back(state: &Services, provider: &dyn Provider, job: &Video) -> bool {
    state.config.server.public_base_url.is_some()
        && job.callback_token.is_some()
        && provider.sends_webhooks()
}

/// The least time between two polls of one job that webhooks cause: the provider's own
/// minimum, and never under `workers.webhook_poll_floor_ms`, so that a flood of deliveries
/// for a job (duplicates or forgeries) costs at most one upstream poll per interval.
/// When the confirming poll of a webhook that arrived at `now` is due: at once, unless the
/// job's last upstream request (`last_step`) was less than `min_interval` ago. The
/// confirmation waits for the interval's end however many webhooks arrive: a poll inside the
/// provider's minimum would be refused (AIgateway answers 304), and the gateway's floor keeps
/// a flood of deliveries from becoming a flood of polls.
pub fn confirmation_due(last_step: i64, now: i64, min_interval: Duration) -> i64 {
    (last_step + min_interval.as_millis() as i64).max(now)
}

pub fn webhook_poll_interval(state: &Services, provider: &dyn Provider) -> Duration {
    provider.min_poll_interval().max(Duration::from_millis(
        state.config.workers.webhook_poll_floor_ms,
    ))
}

pub(super) fn safety_interval(state: &Services) -> Duration {
    Duration::from_secs(state.config.workers.safety_poll_secs.max(1))
}

/// How long jobs of this provider, model and length have taken, where the gateway has seen one.
pub(super) async fn observed_duration(
    state: &Services,
    provider: ProviderId,
    job: &Video,
) -> Option<Duration> {
    let seconds = job.request.seconds.get();
    match state
        .db
        .expected_duration(provider, job.request.model.id(), seconds)
        .await
    {
        Ok(ms) => ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        Err(error) => {
            tracing::debug!(%error, "reading observed job durations failed");
            None
        }
    }
}

/// The first safety poll of a job whose provider calls back: past its expected end by a
/// quarter of the expectation, and at least 10 s, so that a webhook that comes on time (or a
/// little late) arrives first and the job costs its submit and one confirming poll. Without an
/// expectation, after one safety interval.
pub(super) fn first_safety_poll(
    provider: &dyn Provider,
    expected: Option<Duration>,
    interval: Duration,
) -> Duration {
    let wait = match expected {
        Some(expected) => expected + (expected / 4).max(Duration::from_secs(10)),
        None => interval,
    };
    wait.max(provider.min_poll_interval())
}

fn job_age(job: &Video) -> Duration {
    Duration::from_millis((now_ms() - job.created_at_ms).max(0) as u64)
}

/// The first poll comes just after the provider's own estimate (never before its minimum
/// interval); without an estimate, after one regular poll interval.
///
/// Polling just after the estimate, rather than before it, is what keeps upstream calls per
/// job low: a job that finishes on time costs its submit and one poll (or, where the provider
/// sends webhooks, the webhook's confirming poll), and one that runs late falls back to the
/// regular schedule. The margin — 2% of the estimate, between 0.5 s and 2 s — absorbs the
/// provider's rounding without delaying the result noticeably.
pub(super) fn first_poll_delay(provider: &dyn Provider, estimated: Option<Duration>) -> Duration {
    let wait = match estimated {
        // Polls that cost nothing may come early, so progress shows.
        Some(estimate) if provider.free_polls() => {
            estimate.mul_f32(0.8).min(provider.poll_interval())
        }
        Some(estimate) => just_after(estimate),
        None => provider.poll_interval(),
    };
    wait.max(provider.min_poll_interval())
}

/// The estimate plus a margin of 2%, between 0.5 s and 2 s.
fn just_after(estimate: Duration) -> Duration {
    estimate + (estimate / 50).clamp(Duration::from_millis(500), Duration::from_secs(2))
}

/// Exponential backoff with full jitter: up to 0.5 s × 2^attempt, capped at 60 s.
pub fn backoff(attempt: i64) -> Duration {
    let ceiling = 500u64
        .saturating_mul(1u64 << attempt.clamp(0, 7))
        .min(60_000);
    let ms = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SandboxConfig;
    use crate::providers::sandbox::Sandbox;

    #[test]
    fn a_confirmation_waits_out_the_interval_after_the_last_request() {
        let interval = Duration::from_millis(1_000);
        assert_eq!(confirmation_due(10_000, 10_200, interval), 11_000);
        assert_eq!(confirmation_due(10_000, 12_000, interval), 12_000);
        assert_eq!(confirmation_due(10_000, 11_000, interval), 11_000);
    }

    #[test]
    fn polls_back_off_with_age_within_their_bounds() {
        let provider = Sandbox::new(&SandboxConfig {
            enabled: true,
            delay_ms: 40_000,
            fail_all: false,
        });
        assert_eq!(provider.poll_interval(), Duration::from_secs(2));
        assert_eq!(
            poll_delay(&provider, Duration::ZERO),
            Duration::from_millis(500)
        );
        assert_eq!(
            poll_delay(&provider, Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            poll_delay(&provider, Duration::from_secs(600)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_first_poll_comes_just_after_the_estimate() {
        assert_eq!(
            just_after(Duration::from_secs(60)),
            Duration::from_millis(61_200)
        );
        assert_eq!(
            just_after(Duration::from_secs(5)),
            Duration::from_millis(5_500)
        );
        assert_eq!(
            just_after(Duration::from_secs(300)),
            Duration::from_secs(302)
        );
        // The sandbox's polls are free: it is polled early, so progress shows.
        let provider = Sandbox::new(&SandboxConfig {
            enabled: true,
            delay_ms: 40_000,
            fail_all: false,
        });
        assert_eq!(
            first_poll_delay(&provider, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        assert_eq!(first_poll_delay(&provider, None), Duration::from_secs(2));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            assert!(backoff(0) <= Duration::from_millis(500));
            assert!(backoff(0) >= Duration::from_millis(250));
            assert!(backoff(20) <= Duration::from_secs(60));
        }
    }
}
