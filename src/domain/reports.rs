//! Operator reports: their window of UTC days and the money each row is worth (margin,
//! savings). Dates are UTC calendar days, converted with the civil-calendar algorithm
//! (days since 1970-01-01 ↔ year-month-day), exact for any date.

use crate::domain::jobs::transitions::{ENDED_WITHOUT_OUTPUT, IN_FLIGHT};
use crate::error::{Error, Result};
use crate::storage::attempts::PossibleOrphan;
use crate::storage::audit::AuditStatuses;
use crate::storage::reports::{MarginRow, SavingsRow, UsageRow};
use crate::types::money::{Credits, MicroUsd, MoneyError};
use crate::types::video::Video;

/// What a usage report groups by (`group_by`).
pub use crate::storage::reports::UsageGroup;
use crate::storage::Db;

/// The audit's findings are storage's (it reads them in one snapshot); what counts as all
/// clear is decided here ([`AuditReport::all_clear`]).
pub use crate::storage::audit::AuditReport;

impl AuditReport {
    pub fn all_clear(&self) -> bool {
        self.journal_sum == 0
            && [
                &self.unbalanced_transactions,
                &self.mismatched_accounts,
                &self.holds_settled_more_than_once,
                &self.holds_disagreeing,
                &self.holds_accounts_mismatched,
                &self.overcharged_videos,
                &self.charges_disagreeing,
                &self.over_refunded_videos,
                &self.tenant_usage_mismatches,
                &self.tenant_running_mismatches,
                &self.provider_slot_mismatches,
                &self.mode_violations,
                &self.tenant_violations,
                &self.split_violations,
                &self.accounts_below_floor,
            ]
            .iter()
            .all(|list| list.is_empty())
    }
}

/// A tenant's settled jobs in one mode within `[from, to)` (unix ms), grouped.
pub async fn usage(
    db: &Db,
    tenant: &crate::types::ids::TenantId,
    mode: crate::types::money::Mode,
    (from, to): (i64, i64),
    groups: &[UsageGroup],
) -> Result<Vec<UsageRow>> {
    let finished = crate::domain::jobs::transitions::finished();
    Ok(db
        .usage(tenant, mode, (from, to), &finished, groups)
        .await?)
}

/// Checks every money invariant of the ledger on one snapshot (see `storage::audit`).
pub async fn audit(db: &Db) -> Result<AuditReport> {
    let statuses = AuditStatuses {
        running: IN_FLIGHT,
        without_output: ENDED_WITHOUT_OUTPUT,
    };
    Ok(db.audit_ledger(statuses).await?)
}

/// Each tenant-day's upstream spending with what routing saved on it.
pub async fn savings_days(db: &Db, from: i64, to: i64) -> Result<Vec<(SavingsRow, Savings)>> {
    let mut days = Vec::new();
    for row in db.savings_report(from, to).await? {
        let saved = savings(row.paid, row.ceiling, row.baseline, row.jobs_with_baseline)?;
        days.push((row, saved));
    }
    Ok(days)
}

/// Each tenant-provider-day's revenue against its upstream cost.
pub async fn margin_days(
    db: &Db,
    from: i64,
    to: i64,
    credits_per_usd: i64,
) -> Result<Vec<(MarginRow, Margin)>> {
    let mut days = Vec::new();
    for row in db.margin_report(from, to).await? {
        let worth = margin(row.revenue, row.cost, credits_per_usd)?;
        days.push((row, worth));
    }
    Ok(days)
}

/// At most this many rows of each list in the cost-mismatch report.
const MISMATCHES_LISTED: i64 = 500;

/// Completed jobs whose reported upstream cost differs from the catalog's estimate by more
/// than `threshold_percent` (0-10,000), and submits whose answer was lost (the upstream may
/// hold and bill a job the gateway never recorded).
pub async fn cost_mismatches(
    db: &Db,
    from: i64,
    to: i64,
    threshold_percent: i64,
) -> Result<(Vec<Video>, Vec<PossibleOrphan>)> {
    if !(0..=10_000).contains(&threshold_percent) {
        return Err(Error::invalid(
            "threshold_percent",
            "threshold_percent must be from 0 to 10000",
        ));
    }
    let mismatched = db
        .cost_mismatches(from, to, threshold_percent, MISMATCHES_LISTED)
        .await?;
    let finished = crate::domain::jobs::transitions::finished();
    let orphans = db
        .possible_orphans(&finished, from, to, MISMATCHES_LISTED)
        .await?;
    Ok((mismatched, orphans))
}

use crate::types::time::DAY_MS;

/// A report's window as `[start, end)` in unix ms: from the UTC day `from` (default: 30 days
/// before today) through the day `to` (default: today), both `YYYY-MM-DD`.
pub fn window(from: Option<&str>, to: Option<&str>, now_ms: i64) -> Result<(i64, i64)> {
    let today = now_ms.div_euclid(DAY_MS);
    let day = |param: &str, value: Option<&str>, default: i64| match value {
        None => Ok(default),
        Some(text) => day_of_date(text).ok_or_else(|| {
            Error::invalid(param, format!("{param} must be a date like 2026-11-21"))
        }),
    };
    let from = day("from", from, today - 30)?;
    let to = day("to", to, today)?;
    if to < from {
        return Err(Error::invalid("to", "to is before from"));
    }
    Ok((from * DAY_MS, (to + 1) * DAY_MS))
}

/// What a margin row's charged credits were worth against its upstream cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Margin {
    /// The credits in micro-USD at `credits_per_usd`, rounded down.
    pub revenue: MicroUsd,
    pub margin: MicroUsd,
}

pub fn margin(
    revenue: Credits,
    upstream_cost: MicroUsd,
    credits_per_usd: i64,
) -> std::result::Result<Margin, MoneyError> {
    // Configuration keeps `credits_per_usd` at 1 or more.
    let micro = i128::from(revenue.get()) * 1_000_000 / i128::from(credits_per_usd.max(1));
    let revenue = MicroUsd::from_stored(i64::try_from(micro).map_err(|_| MoneyError::Overflow)?);
    Ok(Margin {
        revenue,
        margin: revenue.checked_sub(upstream_cost)?,
    })
}

/// What routing saved on a savings row, in micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savings {
    pub saved_vs_most_expensive: MicroUsd,
    /// What the baseline provider would have cost; `None` when no job could be priced there.
    pub baseline: Option<MicroUsd>,
    pub saved_vs_baseline: Option<MicroUsd>,
}

pub fn savings(
    paid: MicroUsd,
    most_expensive: MicroUsd,
    baseline: MicroUsd,
    jobs_with_baseline: i64,
) -> std::result::Result<Savings, MoneyError> {
    let baseline = (jobs_with_baseline > 0).then_some(baseline);
    Ok(Savings {
        saved_vs_most_expensive: most_expensive.checked_sub(paid)?,
        baseline,
        saved_vs_baseline: baseline.map(|b| b.checked_sub(paid)).transpose()?,
    })
}

/// `YYYY-MM-DD` for a count of days since the unix epoch.
pub fn date_of_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since the unix epoch for `YYYY-MM-DD`, if it is a real date.
pub fn day_of_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (date_of_day(days) == format!("{year:04}-{month:02}-{day:02}")).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_convert_both_ways() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_778), "2026-11-21");
        assert_eq!(day_of_date("2026-11-21"), Some(20_778));
        assert_eq!(day_of_date("2024-02-29"), Some(19_782));
        assert_eq!(day_of_date("2025-02-29"), None);
        assert_eq!(day_of_date("2026-13-01"), None);
        assert_eq!(day_of_date("yesterday"), None);
    }

    #[test]
    fn a_window_covers_whole_utc_days_and_defaults_to_the_last_thirty() {
        let noon = 20_778 * DAY_MS + DAY_MS / 2;
        assert_eq!(
            window(None, None, noon).ok(),
            Some(((20_778 - 30) * DAY_MS, 20_779 * DAY_MS))
        );
        assert_eq!(
            window(Some("2026-11-21"), Some("2026-11-21"), noon).ok(),
            Some((20_778 * DAY_MS, 20_779 * DAY_MS))
        );
        assert!(window(Some("2026-11-22"), Some("2026-11-21"), noon).is_err());
        assert!(window(Some("yesterday"), None, noon).is_err());
    }

    #[test]
    fn margin_counts_revenue_rounded_down_and_savings_only_what_could_be_priced() {
        let usd = MicroUsd::from_stored;
        assert_eq!(
            margin(Credits::from_stored(1_001), usd(700_000), 1_000),
            Ok(Margin {
                revenue: usd(1_001_000),
                margin: usd(301_000)
            })
        );
        assert_eq!(
            margin(Credits::from_stored(1), usd(0), 3).map(|m| m.revenue),
            Ok(usd(333_333))
        );
        assert_eq!(
            margin(Credits::from_stored(0), usd(i64::MIN), 1),
            Err(MoneyError::Overflow)
        );
        let saved = savings(usd(100), usd(250), usd(180), 2);
        assert_eq!(
            saved,
            Ok(Savings {
                saved_vs_most_expensive: usd(150),
                baseline: Some(usd(180)),
                saved_vs_baseline: Some(usd(80))
            })
        );
        let unpriced = savings(usd(100), usd(250), usd(0), 0).expect("in range");
        assert_eq!(unpriced.baseline, None);
        assert_eq!(unpriced.saved_vs_baseline, None);
    }
}
