//! SQL for the journal: accounts with cached balances, entries and holds (audited in
//! [`super::audit`]).

use super::sql::{self, Get};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::{new_txn_id, TenantId, TxnId, VideoId};
use crate::types::money::{Credits, Mode};

/// One line of a posting.
pub struct Entry<'a> {
    pub account: &'a str,
    pub amount: i64,
}

/// What a posting is, for the journal and its readers.
pub struct Posting<'a> {
    pub kind: &'a str,
    pub tenant: Option<&'a TenantId>,
    pub mode: Mode,
    pub video: Option<&'a VideoId>,
    pub memo: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// One journal entry as a tenant sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EntryView {
    /// Position in the journal; pass it as `after` to page on.
    pub id: i64,
    pub txn_id: String,
    /// `available` or `holds`.
    pub account: String,
    /// `grant`, `hold`, `capture` or `void`.
    pub kind: String,
    /// Credits; negative leaves the account.
    pub amount: i64,
    pub video_id: Option<String>,
    pub memo: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A settled or pending hold, as read back when settling it.
pub struct HoldRow {
    pub tenant: TenantId,
    pub mode: Mode,
    pub amount: i64,
    /// The part taken from promotional credit.
    pub promo_part: i64,
    /// The account the hold was taken from; `None` for holds from before sources were kept
    /// (the tenant's available balance).
    pub source: Option<String>,
}

impl Db {
    pub async fn ensure_account(
        tx: &mut Tx,
        id: &str,
        tenant: Option<&TenantId>,
        mode: Mode,
        kind: &str,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO ledger_accounts (id, tenant_id, mode, kind, balance, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(tenant.map(TenantId::as_str))
        .bind(mode.as_str())
        .bind(kind)
        .bind(now_ms())
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Locks `accounts` for the rest of the transaction, in one order shared by every
    /// transaction (their ids, sorted), so that two transactions that move money between the
    /// same accounts in opposite directions queue instead of deadlocking. PostgreSQL only:
    /// SQLite's write transaction already excludes every other writer. Accounts not opened
    /// yet are skipped.
    pub async fn lock_accounts(tx: &mut Tx, accounts: &[&str]) -> Result<(), DbError> {
        if tx.backend() != super::Backend::Postgres || accounts.is_empty() {
            return Ok(());
        }
        // The rows are locked as the sorted result is produced, so in `id` order.
        let placeholders: Vec<String> = (1..=accounts.len()).map(|n| format!("${n}")).collect();
        let mut query = sql::query(format!(
            "SELECT id FROM ledger_accounts WHERE id IN ({}) ORDER BY id FOR UPDATE",
            placeholders.join(", ")
        ));
        for account in accounts {
            query = query.bind(*account);
        }
        query.fetch_all(tx).await?;
        Ok(())
    }

    /// Writes a balanced posting: one balance update per line (except the accounts in
    /// `already_debited`, whose balances the caller updated with a conditional debit), and its
    /// entry rows in one insert.
    pub async fn post(
        tx: &mut Tx,
        posting: &Posting<'_>,
        entries: &[Entry<'_>],
        already_debited: &[&str],
    ) -> Result<TxnId, DbError> {
        debug_assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), 0);
        let txn = new_txn_id();
        let now = now_ms();
        for entry in entries {
            if !already_debited.contains(&entry.account) {
                sql::query("UPDATE ledger_accounts SET balance = balance + $1, updated_at = $2 WHERE id = $3")
                    .bind(entry.amount)
                    .bind(now)
                    .bind(entry.account)
                    .execute(tx)
                    .await?;
            }
        }
        // All the posting's lines in one statement.
        let mut sql = String::from(
            "INSERT INTO ledger_entries \
             (txn_id, account_id, tenant_id, mode, kind, amount, video_id, memo, actor, created_at) VALUES ",
        );
        for n in 0..entries.len() {
            let b = n * 10;
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
        }
        let mut insert = sql::query(sql);
        for entry in entries {
            insert = insert
                .bind(txn.as_str())
                .bind(entry.account)
                .bind(posting.tenant.map(TenantId::as_str))
                .bind(posting.mode.as_str())
                .bind(posting.kind)
                .bind(entry.amount)
                .bind(posting.video.map(VideoId::as_str))
                .bind(posting.memo)
                .bind(posting.actor)
                .bind(now);
        }
        if !entries.is_empty() {
            insert.execute(tx).await?;
        }
        Ok(txn)
    }

    /// Debits as much of `max` as the account holds (never below zero) and returns what it
    /// took. Optimistic: a concurrent change makes it read and try again.
    pub async fn take_up_to(tx: &mut Tx, account: &str, max: i64) -> Result<i64, DbError> {
        for _ in 0..16 {
            let balance = Self::account_balance(tx, account).await?;
            let take = balance.clamp(0, max.max(0));
            if take == 0 {
                return Ok(0);
            }
            let done = sql::query("UPDATE ledger_accounts SET balance = balance - $1, updated_at = $2 WHERE id = $3 AND balance = $4")
                .bind(take)
                .bind(now_ms())
                .bind(account)
                .bind(balance)
                .execute(tx)
                .await?;
            if done == 1 {
                return Ok(take);
            }
        }
        Err(sqlx::Error::Protocol("the promotional balance kept changing; try again".into()).into())
    }

    /// Debits `amount` from an account only if its balance stays at or above `floor`.
    pub async fn debit_above_floor(
        tx: &mut Tx,
        account: &str,
        amount: i64,
        floor: i64,
    ) -> Result<bool, DbError> {
        let done = sql::query(
            "UPDATE ledger_accounts SET balance = balance - $1, updated_at = $2 \
             WHERE id = $3 AND balance - $1 >= $4",
        )
        .bind(amount)
        .bind(now_ms())
        .bind(account)
        .bind(floor)
        .execute(tx)
        .await?;
        Ok(done == 1)
    }

    /// An account's balance inside a transaction (zero for an account not yet opened).
    pub async fn account_balance(tx: &mut Tx, account: &str) -> Result<i64, DbError> {
        let row = sql::query("SELECT balance FROM ledger_accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(tx)
            .await?;
        row.map(|r| r.at::<i64>(0))
            .transpose()
            .map(|b| b.unwrap_or(0))
    }

    /// The balances of `accounts`, in their order (zero for an account not yet opened), read
    /// together outside any transaction.
    pub async fn account_balances(&self, accounts: &[&str]) -> Result<Vec<i64>, DbError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // One statement, so that the balances agree with each other (a hold moves credits
        // between two of them).
        let placeholders: Vec<String> = (1..=accounts.len()).map(|n| format!("${n}")).collect();
        let mut query = sql::query(format!(
            "SELECT id, balance FROM ledger_accounts WHERE id IN ({})",
            placeholders.join(", ")
        ));
        for account in accounts {
            query = query.bind(*account);
        }
        let mut found = std::collections::HashMap::new();
        for row in query.fetch_all(&mut self.read()?).await? {
            found.insert(row.at::<String>(0)?, row.at::<i64>(1)?);
        }
        Ok(accounts
            .iter()
            .map(|a| found.get(*a).copied().unwrap_or(0))
            .collect())
    }

    pub async fn insert_hold(
        tx: &mut Tx,
        video: &VideoId,
        tenant: &TenantId,
        mode: Mode,
        amount: Credits,
        source: &str,
        promo_part: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO holds (video_id, tenant_id, mode, amount, state, created_at, source_account, promo_part) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
        )
        .bind(video.as_str())
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(amount.get())
        .bind(now_ms())
        .bind(source)
        .bind(promo_part)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Moves a pending hold to `state`; `None` when it was not pending (already settled).
    pub async fn settle_hold(
        tx: &mut Tx,
        video: &VideoId,
        state: &str,
        captured: Option<i64>,
    ) -> Result<Option<HoldRow>, DbError> {
        let row = sql::query(
            "UPDATE holds SET state = $1, captured = $2, resolved_at = $3 \
             WHERE video_id = $4 AND state = 'pending' \
             RETURNING tenant_id, mode, amount, source_account, promo_part",
        )
        .bind(state)
        .bind(captured)
        .bind(now_ms())
        .bind(video.as_str())
        .fetch_optional(tx)
        .await?;
        row.map(|row| hold_row(&row)).transpose()
    }

    /// Credits already refunded for a video.
    pub async fn refunded_for_video(tx: &mut Tx, video: &VideoId) -> Result<i64, DbError> {
        sql::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries \
             WHERE video_id = $1 AND kind = 'refund' AND amount > 0",
        )
        .bind(video.as_str())
        .fetch_one(tx)
        .await?
        .at(0)
    }

    /// A video's hold, locking it for the rest of the transaction on PostgreSQL (SQLite's
    /// write transaction already excludes other writers), so that concurrent refunds of one
    /// video are serialized.
    pub async fn lock_hold(
        tx: &mut Tx,
        backend: super::Backend,
        video: &VideoId,
    ) -> Result<Option<HoldRow>, DbError> {
        let lock = match backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let row = sql::query(format!(
            "SELECT tenant_id, mode, amount, source_account, promo_part FROM holds \
             WHERE video_id = $1{lock}"
        ))
        .bind(video.as_str())
        .fetch_optional(tx)
        .await?;
        row.map(|row| hold_row(&row)).transpose()
    }

    /// Journal entries that moved money for one job, by kind (for tests and the operator).
    pub async fn entries_for_video(
        &self,
        video: &VideoId,
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        sql::query(
            "SELECT kind, account_id, amount FROM ledger_entries WHERE video_id = $1 ORDER BY seq",
        )
        .bind(video.as_str())
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?, r.at(2)?)))
        .collect()
    }
}

impl Db {
    /// A page of a tenant's journal entries for one mode, newest first, after `before` (an
    /// entry id). Returns the page and whether more follow.
    pub async fn tenant_entries(
        &self,
        tenant: &TenantId,
        mode: Mode,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<EntryView>, bool), DbError> {
        let rows = sql::query(
            "SELECT seq, txn_id, account_id, kind, amount, video_id, memo, created_at FROM ledger_entries \
             WHERE tenant_id = $1 AND mode = $2 AND account_id LIKE $3 AND ($4 IS NULL OR seq < $4) \
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(format!("{tenant}:%"))
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&mut self.scan())
        .await?;
        let has_more = rows.len() as i64 > limit;
        let entries = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let account: String = r.col("account_id")?;
                Ok(EntryView {
                    id: r.col("seq")?,
                    txn_id: r.col("txn_id")?,
                    account: account
                        .strip_prefix(&format!("{tenant}:{}:", mode.as_str()))
                        .unwrap_or(&account)
                        .to_string(),
                    kind: r.col("kind")?,
                    amount: r.col("amount")?,
                    video_id: r.col("video_id")?,
                    memo: r.col("memo")?,
                    created_at: r.col::<i64>("created_at")? / 1000,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok((entries, has_more))
    }
}

fn hold_row(row: &sql::Row) -> Result<HoldRow, DbError> {
    Ok(HoldRow {
        tenant: TenantId::from_db(row.col("tenant_id")?),
        mode: row.state("mode", Mode::parse)?,
        amount: row.col("amount")?,
        promo_part: row.col("promo_part")?,
        source: row.col("source_account")?,
    })
}
