//! Calendar arithmetic on the clock's milliseconds: the gateway's days are UTC days.

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// How long a `Retry-After` header (in seconds) asks to wait: at most an hour; a value that
/// is not a number of seconds (an HTTP date, or garbage) counts as five seconds.
pub fn retry_after(value: &str) -> std::time::Duration {
    match value.trim().parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs.min(3600)),
        Err(_) => std::time::Duration::from_secs(5),
    }
}
