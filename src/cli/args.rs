//! What the commands' arguments share: ids, amounts, the mode and the output format.

use clap::ValueEnum;

use crate::types::ids::{ApiKeyId, TenantId};
use crate::types::money::{Credits, Mode};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// The live balance and keys: real jobs on the enabled providers.
    Live,
    /// The test balance and keys: jobs on the sandbox.
    Test,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::Live => Mode::Live,
            ModeArg::Test => Mode::Test,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// `export NAME=value` lines, for `eval`.
    Env,
}

pub(crate) fn tenant_arg(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(raw).ok_or_else(|| anyhow::anyhow!("`{raw}` is not a tenant id (ten_…)"))
}

pub(crate) fn key_arg(raw: &str) -> anyhow::Result<ApiKeyId> {
    ApiKeyId::parse(raw).ok_or_else(|| anyhow::anyhow!("`{raw}` is not a key id (key_…)"))
}

/// An amount refused at the command line exits non-zero with the field and the bound.
pub(crate) fn cli_amount(amount: crate::error::Result<Credits>) -> anyhow::Result<Credits> {
    amount.map_err(|e| anyhow::anyhow!("{e}"))
}
