//! Calendar arithmetic on the clock's milliseconds: the gateway's days are UTC days.

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;
