//! The audit of every money invariant the gateway promises, read from one snapshot of the
//! database: the journal balances and its caches match; each hold is taken once and settled
//! at most once, and agrees with the `holds` table and the holds accounts; no job is charged
//! more than it reserved, nor refunded more than it was charged; what comes back from a hold
//! goes to the accounts it came from, in its paid/promotional split; the running totals
//! behind the caps and provider slots equal what the jobs say; test-mode money stays in
//! test-mode accounts and a tenant's money in its own accounts; no balance is below its
//! floor. The admin endpoint, the `ledger audit` command and the test harness all call
//! [`Db::audit_ledger`]. Amounts stay `i64` here: the audit compares stored integers.
//!
//! Each list checks one invariant, so that a fault names the rule it breaks; where one fault
//! must break two rules (a job charged beyond its hold while the journal is right is also a
//! job whose charge the journal did not capture), both lists name it.

use std::collections::{BTreeMap, BTreeSet};

use super::conn::Conn;
use super::videos::status_in;
use super::{sql, Db, DbError};
use crate::types::video::VideoStatus;

/// The job statuses the audit checks the books against, as the domain's table defines them:
/// a running job holds its credits and counts in its tenant's running jobs; a job that ended
/// without output counts no seconds.
#[derive(Debug, Clone, Copy)]
pub struct AuditStatuses<'a> {
    pub running: &'a [VideoStatus],
    pub without_output: &'a [VideoStatus],
}

/// What the journal captured for each video: the revenue credited by its captures.
const CAPTURED: &str = "SELECT e.video_id, CAST(SUM(e.amount) AS BIGINT) AS charged \
     FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id \
     WHERE e.kind = 'capture' AND a.kind = 'revenue' AND e.video_id IS NOT NULL GROUP BY e.video_id";

/// What the journal says of each video's hold.
const HOLD_POSTINGS: &str = "SELECT e.video_id, \
       COUNT(DISTINCT CASE WHEN e.kind = 'hold' THEN e.txn_id END) AS holds_taken, \
       COUNT(DISTINCT CASE WHEN e.kind = 'capture' THEN e.txn_id END) AS captures, \
       COUNT(DISTINCT CASE WHEN e.kind = 'void' THEN e.txn_id END) AS voids, \
       CAST(SUM(CASE WHEN e.kind = 'hold' AND a.kind = 'holds' THEN e.amount ELSE 0 END) AS BIGINT) AS held, \
       CAST(SUM(CASE WHEN a.kind = 'holds' THEN e.amount ELSE 0 END) AS BIGINT) AS still_held \
     FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id \
     WHERE e.video_id IS NOT NULL AND e.kind IN ('hold', 'capture', 'void') GROUP BY e.video_id";

/// What each hold's postings took from and gave back to the hold's own accounts: its source
/// (the tenant's paid balance when the hold names none) and the tenant's promotional credit
/// in the hold's mode. `elsewhere` counts lines on any account but those, the hold's holds
/// account and revenue.
const HOLD_SPLITS: &str = "SELECT h.video_id, h.amount - h.promo_part AS paid_part, h.promo_part, \
       SUM(CASE WHEN e.kind = 'hold' THEN 1 ELSE 0 END) AS hold_lines, \
       SUM(CASE WHEN e.kind = 'hold' AND a.id = h.promo THEN e.amount ELSE 0 END) AS taken_promo, \
       SUM(CASE WHEN e.kind <> 'hold' AND a.id IN (h.source, h.promo) THEN e.amount ELSE 0 END) AS returned, \
       SUM(CASE WHEN e.kind <> 'hold' AND a.id = h.promo THEN e.amount ELSE 0 END) AS returned_promo, \
       SUM(CASE WHEN a.id IN (h.source, h.promo, h.held) OR a.kind = 'revenue' THEN 0 ELSE 1 END) AS elsewhere \
     FROM (SELECT video_id, amount, promo_part, \
             COALESCE(source_account, tenant_id || ':' || mode || ':available') AS source, \
             tenant_id || ':' || mode || ':promotional' AS promo, \
             tenant_id || ':' || mode || ':holds' AS held FROM holds) h \
     JOIN ledger_entries e ON e.video_id = h.video_id AND e.kind IN ('hold', 'capture', 'void', 'refund') \
     JOIN ledger_accounts a ON a.id = e.account_id \
     GROUP BY h.video_id, h.amount, h.promo_part";

/// Result of the audit. Every list names what breaks its invariant; all are empty, and
/// `journal_sum` is zero, in a consistent database.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    /// Sum of every journal entry; zero in a consistent ledger.
    pub journal_sum: i64,
    /// Transactions whose entries do not sum to zero.
    pub unbalanced_transactions: Vec<String>,
    /// Accounts whose cached balance differs from the sum of their entries.
    pub mismatched_accounts: Vec<String>,
    /// Videos whose hold was settled more than once: two captures, two voids, or both.
    pub holds_settled_more_than_once: Vec<String>,
    /// Videos whose hold (its row in `holds`) disagrees with the journal or with the job: not
    /// exactly one hold posting of the hold's amount, a state its settlements do not explain
    /// (posted without a capture, voided without a void, pending with either), credits left on
    /// the holds account after settling, a settled hold of a running job (or the reverse), or
    /// a tenant, mode or amount other than the job's; also a job without a hold, and hold,
    /// capture or void postings for a video without a hold row.
    pub holds_disagreeing: Vec<String>,
    /// Holds accounts whose balance differs from the tenant's pending holds in that mode.
    pub holds_accounts_mismatched: Vec<String>,
    /// Videos charged more than they reserved (by the job, the hold or the journal).
    pub overcharged_videos: Vec<String>,
    /// Videos whose charge (`cost_charged`) differs from what the journal captured for them.
    pub charges_disagreeing: Vec<String>,
    /// Videos refunded more than the journal captured for them.
    pub over_refunded_videos: Vec<String>,
    /// `tenant:mode:day` rows of `tenant_usage` that differ from the jobs created that day
    /// (their charge once final, else their hold; their seconds unless failed or canceled).
    pub tenant_usage_mismatches: Vec<String>,
    /// Tenants whose `tenant_running` differs from their queued and running jobs.
    pub tenant_running_mismatches: Vec<String>,
    /// Providers whose slots in use differ from the jobs holding one, and finished videos
    /// still holding a slot.
    pub provider_slot_mismatches: Vec<String>,
    /// Transactions that mix modes: an entry on an account of the other mode, accounts of both
    /// modes in one transaction, or a video's money posted in a mode other than the video's.
    pub mode_violations: Vec<String>,
    /// Transactions that touch another tenant's money: an entry on an account of a tenant
    /// other than the entry's, or, for a video's money, other than the video's tenant.
    pub tenant_violations: Vec<String>,
    /// Videos whose money did not move between the accounts of their hold in its split: the
    /// hold took other than its promotional part from promotional credit, or what came back
    /// (voids, a capture's unspent part, refunds, together) did not go to the hold's source
    /// until the paid part was back and only the rest to promotional credit, or went to an
    /// account that is neither.
    pub split_violations: Vec<String>,
    /// Accounts below their floor: a tenant's available balance below its credit floor (zero
    /// for test money), an end-user wallet or promotional credit below zero.
    pub accounts_below_floor: Vec<String>,
    pub accounts_checked: i64,
    pub holds_checked: i64,
    pub videos_checked: i64,
    pub ok: bool,
}

impl Db {
    /// Audits every money invariant (see the module doc) on one consistent snapshot, so that
    /// it can run while the gateway works.
    pub async fn audit_ledger(&self, statuses: AuditStatuses<'_>) -> Result<AuditReport, DbError> {
        let mut tx = self.snapshot().await?;
        let mut report = AuditReport {
            journal_sum: scalar(
                &mut tx,
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries",
            )
            .await?,
            ..AuditReport::default()
        };
        report.unbalanced_transactions = ids(
            &mut tx,
            "SELECT txn_id FROM ledger_entries GROUP BY txn_id HAVING SUM(amount) <> 0 ORDER BY txn_id",
        )
        .await?;
        report.mismatched_accounts = ids(
            &mut tx,
            "SELECT a.id FROM ledger_accounts a \
             LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id) e \
             ON e.account_id = a.id \
             WHERE a.balance <> COALESCE(e.total, 0) ORDER BY a.id",
        )
        .await?;
        self.audit_holds(&mut tx, &mut report, statuses).await?;
        self.audit_charges(&mut tx, &mut report).await?;
        self.audit_running_totals(&mut tx, &mut report, statuses)
            .await?;
        self.audit_accounts(&mut tx, &mut report).await?;
        report.mode_violations = ids(
            &mut tx,
            "SELECT e.txn_id FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id \
             LEFT JOIN videos v ON v.id = e.video_id \
             GROUP BY e.txn_id \
             HAVING COUNT(DISTINCT a.mode) > 1 OR COUNT(DISTINCT e.mode) > 1 \
               OR SUM(CASE WHEN e.mode <> a.mode THEN 1 ELSE 0 END) > 0 \
               OR SUM(CASE WHEN v.id IS NOT NULL AND v.mode <> a.mode THEN 1 ELSE 0 END) > 0 \
             ORDER BY e.txn_id",
        )
        .await?;
        report.accounts_checked = scalar(&mut tx, "SELECT COUNT(*) FROM ledger_accounts").await?;
        report.holds_checked = scalar(&mut tx, "SELECT COUNT(*) FROM holds").await?;
        report.videos_checked = scalar(&mut tx, "SELECT COUNT(*) FROM videos").await?;
        drop(tx);
        report.ok = report.all_clear();
        Ok(report)
    }

    /// Holds: settled at most once, in agreement with the journal, the job and the holds
    /// accounts.
    async fn audit_holds(
        &self,
        tx: &mut Conn,
        report: &mut AuditReport,
        statuses: AuditStatuses<'_>,
    ) -> Result<(), DbError> {
        report.holds_settled_more_than_once = ids(
            tx,
            "SELECT video_id FROM ledger_entries \
             WHERE kind IN ('capture', 'void') AND video_id IS NOT NULL \
             GROUP BY video_id HAVING COUNT(DISTINCT txn_id) > 1 ORDER BY video_id",
        )
        .await?;
        let mut disagreeing: BTreeSet<String> = ids(
            tx,
            format!(
                "SELECT h.video_id FROM holds h \
                 LEFT JOIN videos v ON v.id = h.video_id \
                 LEFT JOIN ({HOLD_POSTINGS}) j ON j.video_id = h.video_id \
                 WHERE v.id IS NULL OR v.tenant_id <> h.tenant_id OR v.mode <> h.mode \
                   OR v.cost_reserved <> h.amount \
                   OR ({running}) <> (h.state = 'pending') \
                   OR COALESCE(j.holds_taken, 0) <> 1 OR COALESCE(j.held, 0) <> h.amount \
                   OR COALESCE(j.still_held, 0) <> (CASE WHEN h.state = 'pending' THEN h.amount ELSE 0 END) \
                   OR (COALESCE(j.captures, 0) > 0) <> (h.state = 'posted') \
                   OR (COALESCE(j.voids, 0) > 0) <> (h.state = 'voided')",
                running = status_in("v.status", statuses.running)
            ),
        )
        .await?
        .into_iter()
        .collect();
        // Hold postings without a hold row, and jobs without a hold.
        disagreeing.extend(
            ids(
                tx,
                "SELECT DISTINCT e.video_id FROM ledger_entries e LEFT JOIN holds h ON h.video_id = e.video_id \
                 WHERE e.video_id IS NOT NULL AND e.kind IN ('hold', 'capture', 'void') AND h.video_id IS NULL",
            )
            .await?,
        );
        disagreeing.extend(
            ids(
                tx,
                "SELECT v.id FROM videos v LEFT JOIN holds h ON h.video_id = v.id WHERE h.video_id IS NULL",
            )
            .await?,
        );
        report.holds_disagreeing = disagreeing.into_iter().collect();
        report.holds_accounts_mismatched = ids(
            tx,
            "SELECT a.id FROM ledger_accounts a \
             LEFT JOIN (SELECT tenant_id, mode, CAST(SUM(amount) AS BIGINT) AS pending FROM holds \
                        WHERE state = 'pending' GROUP BY tenant_id, mode) p \
             ON p.tenant_id = a.tenant_id AND p.mode = a.mode \
             WHERE a.kind = 'holds' AND a.balance <> COALESCE(p.pending, 0) ORDER BY a.id",
        )
        .await?;
        Ok(())
    }

    /// Whose accounts money moves between, and how low they go: a tenant's money stays in its
    /// own accounts; a hold takes its promotional part from promotional credit, and what comes
    /// back from it (voids, a capture's unspent part, refunds, together) goes to its source
    /// until the paid part is back, only the rest to promotional credit (the order of
    /// `billing::ledger`); no balance is below its floor.
    async fn audit_accounts(&self, tx: &mut Conn, report: &mut AuditReport) -> Result<(), DbError> {
        report.tenant_violations = ids(
            tx,
            "SELECT DISTINCT e.txn_id FROM ledger_entries e \
             JOIN ledger_accounts a ON a.id = e.account_id \
             LEFT JOIN videos v ON v.id = e.video_id \
             WHERE (a.tenant_id IS NOT NULL AND (e.tenant_id IS NULL OR a.tenant_id <> e.tenant_id)) \
                OR (v.id IS NOT NULL AND (e.tenant_id IS NULL OR e.tenant_id <> v.tenant_id \
                                          OR a.tenant_id <> v.tenant_id)) \
             ORDER BY e.txn_id",
        )
        .await?;
        // Nothing beyond the paid part comes back as promotional credit, nor beyond the
        // promotional part; an over-refund is `over_refunded_videos`' to report.
        report.split_violations = ids(
            tx,
            format!(
                "SELECT s.video_id FROM ({HOLD_SPLITS}) s \
                 WHERE (s.hold_lines > 0 AND s.taken_promo <> -s.promo_part) \
                    OR s.elsewhere > 0 \
                    OR s.returned_promo <> (CASE WHEN s.returned - s.paid_part < 0 THEN 0 \
                                                 WHEN s.returned - s.paid_part > s.promo_part THEN s.promo_part \
                                                 ELSE s.returned - s.paid_part END) \
                 ORDER BY s.video_id"
            ),
        )
        .await?;
        // The floor of `Tenant::floor`: the tenant's credit floor for live money, zero for
        // test money; wallets and promotional credit are never lent.
        report.accounts_below_floor = ids(
            tx,
            "SELECT a.id FROM ledger_accounts a LEFT JOIN tenants t ON t.id = a.tenant_id \
             WHERE (a.kind = 'available' AND a.balance < \
                      (CASE WHEN a.mode = 'live' THEN COALESCE(t.credit_floor, 0) ELSE 0 END)) \
                OR (a.kind IN ('wallet', 'promotional') AND a.balance < 0) \
             ORDER BY a.id",
        )
        .await?;
        Ok(())
    }

    /// Charges and refunds: never more than reserved, never refunded beyond the charge, and
    /// the job's charge is what the journal captured.
    async fn audit_charges(&self, tx: &mut Conn, report: &mut AuditReport) -> Result<(), DbError> {
        report.overcharged_videos = ids(
            tx,
            format!(
                "SELECT v.id FROM videos v LEFT JOIN holds h ON h.video_id = v.id \
                 LEFT JOIN ({CAPTURED}) c ON c.video_id = v.id \
                 WHERE COALESCE(v.cost_charged, 0) > v.cost_reserved \
                   OR COALESCE(h.captured, 0) > h.amount \
                   OR COALESCE(c.charged, 0) > COALESCE(h.amount, v.cost_reserved) \
                 ORDER BY v.id"
            ),
        )
        .await?;
        report.charges_disagreeing = ids(
            tx,
            format!(
                "SELECT v.id FROM videos v LEFT JOIN ({CAPTURED}) c ON c.video_id = v.id \
                 WHERE COALESCE(c.charged, 0) <> COALESCE(v.cost_charged, 0) ORDER BY v.id"
            ),
        )
        .await?;
        report.over_refunded_videos = ids(
            tx,
            format!(
                "SELECT r.video_id FROM \
                   (SELECT e.video_id, CAST(-SUM(e.amount) AS BIGINT) AS refunded \
                    FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id \
                    WHERE e.kind = 'refund' AND a.kind = 'revenue' AND e.video_id IS NOT NULL \
                    GROUP BY e.video_id) r \
                 LEFT JOIN ({CAPTURED}) c ON c.video_id = r.video_id \
                 WHERE r.refunded > COALESCE(c.charged, 0) ORDER BY r.video_id"
            ),
        )
        .await?;
        Ok(())
    }

    /// The running totals behind the tenant caps and the provider slots, recounted from the
    /// jobs (every job row stays, deleted or expired ones included, and so do their counts).
    async fn audit_running_totals(
        &self,
        tx: &mut Conn,
        report: &mut AuditReport,
        statuses: AuditStatuses<'_>,
    ) -> Result<(), DbError> {
        let day_ms = crate::types::time::DAY_MS;
        let expected = keyed(
            tx,
            format!(
                "SELECT tenant_id || ':' || mode || ':' || CAST(created_at / {day_ms} AS TEXT), \
                   CAST(SUM(COALESCE(cost_charged, cost_reserved)) AS BIGINT), \
                   CAST(SUM(CASE WHEN {without_output} THEN 0 ELSE COALESCE(seconds, 0) END) AS BIGINT) \
                 FROM videos GROUP BY tenant_id, mode, created_at / {day_ms}",
                without_output = status_in("status", statuses.without_output)
            ),
            2,
        )
        .await?;
        let stored = keyed(
            tx,
            "SELECT tenant_id || ':' || mode || ':' || CAST(day AS TEXT), credits, seconds FROM tenant_usage",
            2,
        )
        .await?;
        report.tenant_usage_mismatches = differing(&expected, &stored, 2);
        let expected = keyed(
            tx,
            format!(
                "SELECT tenant_id || ':' || mode, COUNT(*) FROM videos WHERE {} GROUP BY tenant_id, mode",
                status_in("status", statuses.running)
            ),
            1,
        )
        .await?;
        let stored = keyed(
            tx,
            "SELECT tenant_id || ':' || mode, running FROM tenant_running",
            1,
        )
        .await?;
        report.tenant_running_mismatches = differing(&expected, &stored, 1);
        let expected = keyed(
            tx,
            "SELECT slot_provider, COUNT(*) FROM videos WHERE slot_provider IS NOT NULL GROUP BY slot_provider",
            1,
        )
        .await?;
        let stored = keyed(tx, "SELECT provider, in_use FROM provider_slots", 1).await?;
        let mut slots = differing(&expected, &stored, 1);
        slots.extend(
            ids(
                tx,
                format!(
                    "SELECT id FROM videos WHERE slot_provider IS NOT NULL AND NOT ({}) ORDER BY id",
                    status_in("status", statuses.running)
                ),
            )
            .await?,
        );
        report.provider_slot_mismatches = slots;
        Ok(())
    }
}

async fn scalar(
    tx: &mut Conn,
    sql: impl Into<std::borrow::Cow<'static, str>>,
) -> Result<i64, DbError> {
    sql::query(sql).fetch_one(tx).await?.at(0)
}

/// The first column of every row, as text.
async fn ids(
    tx: &mut Conn,
    sql: impl Into<std::borrow::Cow<'static, str>>,
) -> Result<Vec<String>, DbError> {
    sql::query(sql)
        .fetch_all(tx)
        .await?
        .iter()
        .map(|r| r.at::<String>(0))
        .collect()
}

/// Rows of a key and `width` integers.
async fn keyed(
    tx: &mut Conn,
    sql: impl Into<std::borrow::Cow<'static, str>>,
    width: usize,
) -> Result<BTreeMap<String, Vec<i64>>, DbError> {
    sql::query(sql)
        .fetch_all(tx)
        .await?
        .iter()
        .map(|r| {
            let values = (1..=width)
                .map(|i| r.at::<i64>(i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((r.at::<String>(0)?, values))
        })
        .collect()
}

/// Keys whose values differ between the two sides; a missing key counts as zeros.
fn differing(
    expected: &BTreeMap<String, Vec<i64>>,
    stored: &BTreeMap<String, Vec<i64>>,
    width: usize,
) -> Vec<String> {
    let zeros = vec![0; width];
    expected
        .keys()
        .chain(stored.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| expected.get(*key).unwrap_or(&zeros) != stored.get(*key).unwrap_or(&zeros))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_total_counts_as_zero_and_any_difference_is_named() {
        let expected = BTreeMap::from([
            ("a".to_string(), vec![5, 1]),
            ("b".to_string(), vec![0, 0]),
            ("c".to_string(), vec![3, 3]),
        ]);
        let stored = BTreeMap::from([
            ("a".to_string(), vec![5, 1]),
            ("c".to_string(), vec![3, 4]),
            ("d".to_string(), vec![1, 0]),
        ]);
        assert_eq!(differing(&expected, &stored, 2), vec!["c", "d"]);
    }

    #[test]
    fn a_report_is_clear_only_when_every_list_is_empty() {
        assert!(AuditReport::default().all_clear());
        let report = AuditReport {
            over_refunded_videos: vec!["vid_1".into()],
            ..AuditReport::default()
        };
        assert!(!report.all_clear());
    }
}
