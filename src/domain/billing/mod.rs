//! Money: the credit unit, the tenant price of a request, and the double-entry journal
//! operations (grant, hold, capture, void) that move credits.

pub mod ledger;
pub mod pricing;

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of the ledger unit. Integers only: money is never a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Credits(pub i64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.0.checked_add(other.0).map(Credits)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0.checked_sub(other.0).map(Credits)
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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
