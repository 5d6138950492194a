//! A circuit breaker per provider. After `failure_threshold` consecutive failures of calls
//! another provider might not have had (unavailable, rate limited, 5xx, timeouts, malformed
//! answers — not a 400, which is the request's fault), or when at least half of its last 20
//! calls failed (with 10 or more seen), the circuit opens: routing leaves the
//! provider out, with that reason, for `cooldown_secs`. Then it is half-open: the next job is
//! the probe; a success closes the circuit, a failure opens it again.
//!
//! Trade-off: the state is kept per replica, in memory. Each replica learns a provider's
//! health from its own calls within a few failures, and a restart starts closed; shared state
//! would cost a database or Redis round trip on every routing decision.

use crate::types::ids::ProviderId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug, Clone)]
struct Circuit {
    state: State,
    consecutive_failures: u32,
    /// The last calls' outcomes, newest last (true: failed).
    recent: std::collections::VecDeque<bool>,
}

/// Calls remembered for the error rate, and how many must be seen before it counts.
const WINDOW: usize = 20;
const MIN_SAMPLES: usize = 10;

impl Circuit {
    fn remember(&mut self, failed: bool) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(failed);
    }

    fn error_rate_too_high(&self) -> bool {
        let failures = self.recent.iter().filter(|f| **f).count();
        self.recent.len() >= MIN_SAMPLES && failures * 2 >= self.recent.len()
    }
}

/// What the operator sees of one circuit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CircuitView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    /// Share of the last 20 calls that failed.
    pub recent_error_rate_percent: u32,
    /// Seconds until an open circuit becomes half-open.
    pub reopens_in_secs: Option<u64>,
}

pub struct Circuits {
    failure_threshold: u32,
    cooldown: Duration,
    by_provider: Mutex<HashMap<ProviderId, Circuit>>,
}

impl Default for Circuits {
    fn default() -> Self {
        Circuits::new(5, Duration::from_secs(30))
    }
}

impl Circuits {
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Circuits {
        Circuits {
            failure_threshold: failure_threshold.max(1),
            cooldown,
            by_provider: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, provider: ProviderId, f: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut map = self.by_provider.lock().unwrap_or_else(|p| p.into_inner());
        let circuit = map.entry(provider).or_insert(Circuit {
            state: State::Closed,
            consecutive_failures: 0,
            recent: std::collections::VecDeque::with_capacity(WINDOW),
        });
        if let State::Open { until } = circuit.state {
            if Instant::now() >= until {
                circuit.state = State::HalfOpen;
            }
        }
        f(circuit)
    }

    /// `Err(reason)` while the circuit is open.
    pub fn check(&self, provider: ProviderId) -> Result<(), String> {
        self.with(provider, |c| match c.state {
            State::Open { until } => Err(format!(
                "is failing (circuit open after {} consecutive failures; retried in {} s)",
                c.consecutive_failures,
                until.saturating_duration_since(Instant::now()).as_secs() + 1
            )),
            _ => Ok(()),
        })
    }

    pub fn record_success(&self, provider: ProviderId) {
        self.with(provider, |c| {
            c.remember(false);
            c.state = State::Closed;
            c.consecutive_failures = 0;
        });
    }

    pub fn record_failure(&self, provider: ProviderId) {
        let (threshold, cooldown) = (self.failure_threshold, self.cooldown);
        self.with(provider, |c| {
            c.consecutive_failures = c.consecutive_failures.saturating_add(1);
            c.remember(true);
            if c.state == State::HalfOpen
                || c.consecutive_failures >= threshold
                || c.error_rate_too_high()
            {
                if !matches!(c.state, State::Open { .. }) {
                    tracing::warn!(
                        provider = provider.as_str(),
                        failures = c.consecutive_failures,
                        "circuit opened"
                    );
                }
                c.state = State::Open {
                    until: Instant::now() + cooldown,
                };
            }
        });
    }

    pub fn reset(&self, provider: ProviderId) {
        self.with(provider, |c| {
            c.state = State::Closed;
            c.consecutive_failures = 0;
            c.recent.clear();
        });
    }

    pub fn view(&self, provider: ProviderId) -> CircuitView {
        self.with(provider, |c| CircuitView {
            recent_error_rate_percent: if c.recent.is_empty() {
                0
            } else {
                (c.recent.iter().filter(|f| **f).count() * 100 / c.recent.len()) as u32
            },
            state: match c.state {
                State::Closed => "closed",
                State::Open { .. } => "open",
                State::HalfOpen => "half_open",
            },
            consecutive_failures: c.consecutive_failures,
            reopens_in_secs: match c.state {
                State::Open { until } => {
                    Some(until.saturating_duration_since(Instant::now()).as_secs())
                }
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ProviderId = ProviderId::Apiframe;

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_the_cooldown() {
        let circuits = Circuits::new(3, Duration::from_millis(50));
        circuits.record_failure(P);
        circuits.record_failure(P);
        assert!(circuits.check(P).is_ok());
        circuits.record_failure(P);
        assert!(circuits.check(P).is_err());
        assert_eq!(circuits.view(P).state, "open");
        std::thread::sleep(Duration::from_millis(60));
        assert!(circuits.check(P).is_ok());
        assert_eq!(circuits.view(P).state, "half_open");
        // A failed probe opens it again at once.
        circuits.record_failure(P);
        assert!(circuits.check(P).is_err());
        circuits.reset(P);
        assert_eq!(circuits.view(P).state, "closed");
    }

    #[test]
    fn a_high_error_rate_opens_it_without_consecutive_failures() {
        let circuits = Circuits::new(5, Duration::from_secs(60));
        for _ in 0..5 {
            circuits.record_success(P);
            circuits.record_failure(P);
        }
        assert!(circuits.check(P).is_err(), "5 of the last 10 calls failed");
        let healthy = Circuits::new(5, Duration::from_secs(60));
        for _ in 0..6 {
            healthy.record_success(P);
            healthy.record_success(P);
            healthy.record_failure(P);
        }
        assert!(healthy.check(P).is_ok(), "a third failing is tolerated");
    }

    #[test]
    fn a_success_clears_the_failure_count() {
        let circuits = Circuits::new(2, Duration::from_secs(60));
        circuits.record_failure(P);
        circuits.record_success(P);
        circuits.record_failure(P);
        assert!(circuits.check(P).is_ok());
    }
}
