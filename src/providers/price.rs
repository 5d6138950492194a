//! Arithmetic the providers' price rules share. Each rule lives in its provider's module
//! (`upstream_cost`); the routing catalog asks them all.

use crate::types::money::MicroUsd;

/// One reseller credit ($0.01) in micro-USD.
pub const CENT: i64 = 10_000;

/// `credits` reseller credits ($0.01 each) in micro-USD.
pub fn credits(credits: i64) -> Result<MicroUsd, String> {
    MicroUsd::from_stored(CENT)
        .checked_mul(credits)
        .map_err(|e| e.to_string())
}

/// `micros_per_second` for `seconds` seconds.
pub fn per_second(micros_per_second: i64, seconds: i64) -> Result<MicroUsd, String> {
    MicroUsd::from_stored(micros_per_second)
        .checked_mul(seconds)
        .map_err(|e| e.to_string())
}

/// Integer ceil(a / b) for positive b.
pub fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}
