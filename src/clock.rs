//! The wall clock every layer stamps times with, in one place.
//!
//! The clock can be moved: [`set_offset_ms`] shifts what [`now_ms`] answers for the whole
//! process. Tests use it to cross midnight, a month end or a key's expiry without sleeping;
//! nothing in the gateway's configuration or API reaches it. Elapsed times (timeouts, poll
//! intervals) are measured with `Instant`, which it does not move.

use std::sync::atomic::{AtomicI64, Ordering};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the unix epoch, as this process's clock says.
pub fn now_ms() -> i64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    real.saturating_add(OFFSET_MS.load(Ordering::Relaxed))
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
