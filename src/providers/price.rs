//! Arithmetic the providers' price rules share. Each rule lives in its provider's module
//! (`upstream_cost`); the routing catalog asks them all.

/// One reseller credit ($0.01) in micro-USD.
pub const CENT: i64 = 10_000;

/// Integer ceil(a / b) for positive b.
pub fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}
