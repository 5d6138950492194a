//! The wall clock every layer stamps times with, in one place.
//!
//! What [`now_ms`] answers is the machine's clock, set to the database's: replicas on
//! machines whose clocks disagree stamp, schedule and expire on one time line. The storage
//! layer measures the database's clock at start and every little while after
//! (`Db::align_clock`) and hands the difference to [`align`]. Without it, a replica whose clock
//! runs ahead would see every other replica's jobs as due, and past their hold timeout, long
//! before they are; one that runs behind would leave the jobs it scheduled waiting for minutes
//! after it died. Leases do not even rely on this: they are set and checked in the database's
//! own time, in SQL (`storage::leases`).
//!
//! The clock can also be moved: [`set_offset_ms`] shifts what [`now_ms`] answers for the whole
//! process. Tests use it to cross midnight, a month end or a key's expiry without sleeping;
//! nothing in the gateway's configuration or API reaches it. Elapsed times (timeouts, poll
//! intervals) are measured with `Instant`, which it does not move.

use std::sync::atomic::{AtomicI64, Ordering};

/// Where tests have moved the clock to ([`set_offset_ms`]).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// The database's clock minus this machine's ([`align`]).
static ALIGNMENT_MS: AtomicI64 = AtomicI64::new(0);
/// How wrong this machine's clock is made to be, for tests of replicas whose clocks disagree
/// ([`set_machine_skew_ms`]).
static SKEW_MS: AtomicI64 = AtomicI64::new(0);

/// A measurement that took longer than this says too little about the other clock.
const MAX_ROUND_TRIP_MS: i64 = 1_000;
/// Alignments closer than this to the current one are left alone, so that the clock does not
/// jitter back and forth by a millisecond at every measurement.
const TOLERANCE_MS: i64 = 20;

/// Milliseconds since the unix epoch, as this process's clock says.
pub fn now_ms() -> i64 {
    machine_ms()
        .saturating_add(ALIGNMENT_MS.load(Ordering::Relaxed))
        .saturating_add(OFFSET_MS.load(Ordering::Relaxed))
}

/// This machine's own clock, before any alignment: what [`align`]'s measurements are taken in.
pub fn machine_ms() -> i64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    real.saturating_add(SKEW_MS.load(Ordering::Relaxed))
}

/// Sets the clock to a reference clock (the database's), read as `reference_ms` between
/// `sent_ms` and `received_ms` of [`machine_ms`]. Returns the alignment in force afterwards.
/// A measurement whose round trip was too long to trust changes nothing.
pub fn align(reference_ms: i64, sent_ms: i64, received_ms: i64) -> i64 {
    let current = ALIGNMENT_MS.load(Ordering::Relaxed);
    let alignment = alignment(current, reference_ms, sent_ms, received_ms);
    if alignment != current {
        ALIGNMENT_MS.store(alignment, Ordering::Relaxed);
    }
    alignment
}

/// The alignment after a measurement (see [`align`]), from the `current` one.
fn alignment(current: i64, reference_ms: i64, sent_ms: i64, received_ms: i64) -> i64 {
    let round_trip = received_ms.saturating_sub(sent_ms);
    if !(0..=MAX_ROUND_TRIP_MS).contains(&round_trip) {
        return current;
    }
    let measured = reference_ms.saturating_sub(sent_ms.saturating_add(round_trip / 2));
    if measured.abs_diff(current) > TOLERANCE_MS as u64 {
        measured
    } else {
        current
    }
}

/// Moves this process's clock by `offset_ms` from the real time (0 puts it back).
pub fn set_offset_ms(offset_ms: i64) {
    OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}

/// Moves this process's clock so that it reads `at_ms` now.
pub fn set_now_ms(at_ms: i64) {
    set_offset_ms(0);
    set_offset_ms(at_ms.saturating_sub(now_ms()));
}

/// Makes this machine's clock read `skew_ms` off the real time, as a badly set machine's
/// would: for tests only (the binary reads it from `SGW_TEST_MACHINE_CLOCK_SKEW_MS`, see
/// `docs/configuration.md`), to show that replicas whose clocks disagree still agree on time.
pub fn set_machine_skew_ms(skew_ms: i64) {
    SKEW_MS.store(skew_ms, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_follows_the_reference_and_ignores_slow_or_tiny_differences() {
        let first = alignment(0, 10_000 + 60_000, 10_000, 10_010);
        assert_eq!(first, 59_995, "the midpoint of the round trip");
        assert_eq!(
            alignment(first, 80_000, 20_000, 20_002),
            first,
            "within tolerance"
        );
        assert_eq!(
            alignment(first, 0, 30_000, 35_000),
            first,
            "a 5 s round trip"
        );
        assert_eq!(alignment(first, 40_000, 40_000, 40_000), 0);
    }
}
