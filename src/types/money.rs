//! The two money types: [`Credits`] (the ledger unit tenants spend) and [`MicroUsd`] (what an
//! upstream charges the operator, in millionths of a dollar).
//!
//! Both are integers behind a private field, so an amount cannot be built without going
//! through one of two doors:
//!
//! - [`Credits::new`] / [`MicroUsd::new`] for any amount that enters from outside (HTTP, CLI,
//!   configuration): it refuses a magnitude above [`MAX_AMOUNT`] (10^15). Every bounded amount
//!   can be negated, added to or subtracted from another and multiplied by any video length
//!   without leaving `i64`, so the arithmetic behind it cannot wrap;
//! - `from_stored` for an amount the gateway itself wrote (a database column, a sum of them).
//!
//! All arithmetic is checked and returns [`MoneyError::Overflow`] instead of wrapping: there
//! is no `+`, `-` or unary `-` on these types, on purpose.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest magnitude any single amount that enters the gateway may have: 10^15.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amounts are integers from -10^15 to 10^15")]
    OutOfRange,
    #[error("the amount overflows")]
    Overflow,
}

macro_rules! money_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
        )]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const ZERO: $name = $name(0);
            /// The largest amount [`Self::new`] accepts.
            pub const MAX: $name = $name(MAX_AMOUNT);

            /// An amount from outside the gateway: refused beyond ±[`MAX_AMOUNT`].
            pub fn new(value: i64) -> Result<$name, MoneyError> {
                if (-MAX_AMOUNT..=MAX_AMOUNT).contains(&value) {
                    Ok($name(value))
                } else {
                    Err(MoneyError::OutOfRange)
                }
            }

            /// An amount the gateway wrote itself (a stored column, a sum of them).
            pub const fn from_stored(value: i64) -> $name {
                $name(value)
            }

            pub const fn get(self) -> i64 {
                self.0
            }

            pub fn is_positive(self) -> bool {
                self.0 > 0
            }

            pub fn is_negative(self) -> bool {
                self.0 < 0
            }

            pub fn checked_add(self, other: $name) -> Result<$name, MoneyError> {
                self.0.checked_add(other.0).map($name).ok_or(MoneyError::Overflow)
            }

            pub fn checked_sub(self, other: $name) -> Result<$name, MoneyError> {
                self.0.checked_sub(other.0).map($name).ok_or(MoneyError::Overflow)
            }

            pub fn checked_neg(self) -> Result<$name, MoneyError> {
                self.0.checked_neg().map($name).ok_or(MoneyError::Overflow)
            }

            pub fn checked_abs(self) -> Result<$name, MoneyError> {
                self.0.checked_abs().map($name).ok_or(MoneyError::Overflow)
            }

            pub fn checked_mul(self, factor: i64) -> Result<$name, MoneyError> {
                self.0.checked_mul(factor).map($name).ok_or(MoneyError::Overflow)
            }

            /// The smaller of the two.
            pub fn min(self, other: $name) -> $name {
                $name(self.0.min(other.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

money_type!(
    /// An amount of the ledger unit. Integers only: money is never a float.
    Credits
);

money_type!(
    /// An amount of US dollars in millionths (1 USD = 1,000,000), as upstreams are priced.
    MicroUsd
);

impl MicroUsd {
    /// Reads a dollar amount such as `"0.011"` (rounded half up at the sixth decimal),
    /// bounded like every amount that enters the gateway.
    pub fn parse_usd(text: &str) -> Option<MicroUsd> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut micros_text: String = fraction.chars().take(6).collect();
        while micros_text.len() < 6 {
            micros_text.push('0');
        }
        let mut micros: i64 = micros_text.parse().ok()?;
        if fraction.as_bytes().get(6).is_some_and(|d| *d >= b'5') {
            micros += 1;
        }
        let total = whole.checked_mul(1_000_000)?.checked_add(micros)?;
        MicroUsd::new(if negative { -total } else { total }).ok()
    }
}

/// Live keys spend the tenant's real balance; test keys spend a separate test balance and
/// only ever reach the sandbox provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    pub fn parse(raw: &str) -> Option<Mode> {
        match raw {
            "live" => Some(Mode::Live),
            "test" => Some(Mode::Test),
            _ => None,
        }
    }
}

/// A cost an upstream reported, as it wrote it, and in micro-USD where it can be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCost {
    /// e.g. `cost_credits=242` or `usd_spent=0.5`.
    pub raw: String,
    pub micro_usd: Option<MicroUsd>,
}

impl ReportedCost {
    /// A cost in the common reseller credit (1 credit = 0.01 USD).
    pub fn cents(field: &str, credits: i64) -> ReportedCost {
        ReportedCost {
            raw: format!("{field}={credits}"),
            micro_usd: MicroUsd::new(credits)
                .and_then(|c| c.checked_mul(10_000))
                .ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_amounts_become_exact_micros() {
        let micros = |text: &str| MicroUsd::parse_usd(text).map(MicroUsd::get);
        assert_eq!(micros("0.25"), Some(250_000));
        assert_eq!(micros("1.2345675"), Some(1_234_568));
        assert_eq!(micros("12"), Some(12_000_000));
        assert_eq!(micros(".5"), Some(500_000));
        assert_eq!(micros("1e3"), None);
        assert_eq!(micros(""), None);
    }

    #[test]
    fn new_refuses_what_arithmetic_could_not_carry() {
        for raw in [
            i64::MIN,
            i64::MIN + 1,
            -MAX_AMOUNT - 1,
            MAX_AMOUNT + 1,
            i64::MAX,
        ] {
            assert_eq!(Credits::new(raw), Err(MoneyError::OutOfRange), "{raw}");
            assert_eq!(MicroUsd::new(raw), Err(MoneyError::OutOfRange), "{raw}");
        }
        for raw in [-MAX_AMOUNT, -1, 0, 1, MAX_AMOUNT] {
            assert_eq!(Credits::new(raw).map(Credits::get), Ok(raw));
        }
    }

    #[test]
    fn every_bounded_amount_negates_and_sums_without_wrapping() {
        let low = Credits::new(-MAX_AMOUNT).unwrap();
        let high = Credits::new(MAX_AMOUNT).unwrap();
        assert_eq!(low.checked_neg(), Ok(high));
        assert_eq!(low.checked_abs(), Ok(high));
        assert_eq!(high.checked_add(high).map(Credits::get), Ok(2 * MAX_AMOUNT));
        assert_eq!(low.checked_sub(high).map(Credits::get), Ok(-2 * MAX_AMOUNT));
        // 15 s of video at the largest rate still fits.
        assert!(high.checked_mul(15).is_ok());
    }

    #[test]
    fn stored_extremes_report_overflow_instead_of_wrapping() {
        let min = Credits::from_stored(i64::MIN);
        assert_eq!(min.checked_neg(), Err(MoneyError::Overflow));
        assert_eq!(min.checked_abs(), Err(MoneyError::Overflow));
        assert_eq!(
            min.checked_sub(Credits::from_stored(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Credits::from_stored(i64::MAX).checked_add(Credits::from_stored(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Credits::from_stored(i64::MAX).checked_mul(2),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn dollar_amounts_are_read_exactly_and_bounded() {
        assert_eq!(
            MicroUsd::parse_usd("0.011").map(MicroUsd::get),
            Some(11_000)
        );
        assert_eq!(MicroUsd::parse_usd("1").map(MicroUsd::get), Some(1_000_000));
        assert_eq!(MicroUsd::parse_usd(".0000005").map(MicroUsd::get), Some(1));
        assert_eq!(
            MicroUsd::parse_usd("-0.5").map(MicroUsd::get),
            Some(-500_000)
        );
        assert_eq!(
            MicroUsd::parse_usd("1000000000").map(MicroUsd::get),
            Some(MAX_AMOUNT)
        );
        assert_eq!(MicroUsd::parse_usd("1000000000.000001"), None);
        assert_eq!(MicroUsd::parse_usd("9223372036854"), None);
        assert_eq!(MicroUsd::parse_usd("abc"), None);
        assert_eq!(MicroUsd::parse_usd(""), None);
    }
}
