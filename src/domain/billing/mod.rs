//! Money: the credit unit, the tenant price of a request, and the double-entry journal
//! operations (grant, hold, capture, void) that move credits.

pub mod ledger;
pub mod pricing;

pub use crate::types::money::{Credits, MicroUsd, Mode, MoneyError, MAX_AMOUNT};

use crate::error::Error;

/// Reads an amount of credits that entered from outside (an HTTP body, a CLI flag) for the
/// field `param`: at most 10^15 either way, else a 400 that names the field.
pub fn amount(param: &str, value: i64) -> Result<Credits, Error> {
    Credits::new(value).map_err(|_| {
        Error::invalid(
            param,
            format!("{param} must be an integer from -10^15 to 10^15 credits"),
        )
    })
}

/// Like [`amount`], for a field that must be more than zero.
pub fn positive_amount(param: &str, value: i64) -> Result<Credits, Error> {
    match Credits::new(value) {
        Ok(credits) if credits.is_positive() => Ok(credits),
        _ => Err(Error::invalid(
            param,
            format!("{param} must be a positive integer of at most 10^15 credits"),
        )),
    }
}

/// Like [`amount`], for a field that must not be negative.
pub fn non_negative_amount(param: &str, value: i64) -> Result<Credits, Error> {
    match Credits::new(value) {
        Ok(credits) if !credits.is_negative() => Ok(credits),
        _ => Err(Error::invalid(
            param,
            format!("{param} must be an integer from 0 to 10^15 credits"),
        )),
    }
}

/// Like [`amount`], for a field where zero means nothing and is refused.
pub fn non_zero_amount(param: &str, value: i64) -> Result<Credits, Error> {
    match Credits::new(value) {
        Ok(credits) if credits != Credits::ZERO => Ok(credits),
        _ => Err(Error::invalid(
            param,
            format!("{param} must be a non-zero integer from -10^15 to 10^15 credits"),
        )),
    }
}

/// A failed checked operation on stored amounts: the ledger cannot represent the result.
impl From<MoneyError> for Error {
    fn from(error: MoneyError) -> Self {
        Error::Internal(anyhow::Error::new(error).context("money arithmetic"))
    }
}
