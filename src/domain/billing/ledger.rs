//! The double-entry journal. Each tenant has, per mode (live/test), an `available` account and
//! a `holds` account; the system has a `grants` source and a `revenue` sink. Every posting is a
//! set of entries that sums to zero, written in the same database transaction as the state
//! change that justifies it:
//!
//! | operation        | entries                                                       |
//! |------------------|---------------------------------------------------------------|
//! | grant N          | system grants −N, tenant available +N                         |
//! | hold P (submit)  | tenant available −P, tenant holds +P  (refused below floor)   |
//! | capture C ≤ P    | tenant holds −P, revenue +C, tenant available +(P−C)          |
//! | void             | tenant holds −P, tenant available +P                          |
//! | refund R ≤ C     | revenue −R, tenant available +R                               |
//!
//! Like a TigerBeetle pending transfer, a hold row moves from `pending` to `posted` or
//! `voided` exactly once: the second capture or void of the same hold is a no-op.
//!
//! "Tenant available" above is the hold's source: the tenant's paid balance or an end user's
//! wallet. A hold from the tenant's balance takes promotional credit first, then paid credit,
//! and remembers the promotional part. Whatever comes back from it — the unspent part of a
//! capture, a void, an operator's refunds, one after another — unwinds in the reverse order:
//! the first credits back go to the source, up to the paid part; only the rest goes back to
//! promotional credit ([`HoldRow::return_split`]). So a partial refund gives paid credit back
//! first; a refund of R after a capture of C leaves the accounts exactly as a capture of C − R
//! would have; and since all refunds together never exceed the charge, no more promotional
//! credit ever comes back than the job took. Integers throughout: no share is ever rounded.
//!
//! Each operation first locks every account it will touch, in one global order
//! ([`Db::lock_accounts`]), so that concurrent postings over the same accounts never deadlock;
//! the transactions that call them run through [`crate::storage::retry_conflicts`].

use crate::storage::{Db, Tx};
use crate::types::ids::{EndUserId, TenantId, TxnId, VideoId};
use crate::types::money::{Credits, Mode, MoneyError};

/// The journal's rows are storage's; what they mean is decided here: the split of what comes
/// back from a hold ([`HoldRow::return_split`]) is a method of the row, kept beside the rules
/// that use it.
pub use crate::storage::ledger::{Entry, EntryView, HoldRow, Posting};

pub fn available_account(tenant: &TenantId, mode: Mode) -> String {
    format!("{tenant}:{}:available", mode.as_str())
}

pub fn holds_account(tenant: &TenantId, mode: Mode) -> String {
    format!("{tenant}:{}:holds", mode.as_str())
}

/// A tenant's promotional (granted) credit, kept apart from paid credit and consumed first.
pub fn promotional_account(tenant: &TenantId, mode: Mode) -> String {
    format!("{tenant}:{}:promotional", mode.as_str())
}

/// An end user's prepaid wallet, funded from its tenant's balance.
pub fn wallet_account(tenant: &TenantId, mode: Mode, user: &EndUserId) -> String {
    format!("{tenant}:{}:wallet:{}", mode.as_str(), user.as_str())
}

pub fn grants_account(mode: Mode) -> String {
    format!("system:{}:grants", mode.as_str())
}

pub fn revenue_account(mode: Mode) -> String {
    format!("system:{}:revenue", mode.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Paid credit available to new jobs.
    pub available: Credits,
    pub held: Credits,
    /// Promotional (granted) credit, consumed before paid credit.
    pub promotional: Credits,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient credits: {needed} needed, {available} available")]
    Insufficient { needed: Credits, available: Credits },
    #[error(transparent)]
    Db(#[from] crate::storage::DbError),
    /// A stored amount the arithmetic cannot carry (never from a bounded input).
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl crate::storage::Conflict for LedgerError {
    fn is_conflict(&self) -> bool {
        matches!(self, LedgerError::Db(e) if e.is_conflict())
    }
}

impl From<LedgerError> for crate::error::Error {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Insufficient { needed, available } => {
                crate::error::Error::InsufficientCredits { needed, available }
            }
            LedgerError::Db(e) => e.into(),
            LedgerError::Money(e) => e.into(),
        }
    }
}

/// The two entries of moving `amount` from one account to another.
fn pair<'a>(from: &'a str, to: &'a str, amount: Credits) -> Result<[Entry<'a>; 2], MoneyError> {
    Ok([
        Entry {
            account: from,
            amount: amount.checked_neg()?.get(),
        },
        Entry {
            account: to,
            amount: amount.get(),
        },
    ])
}

/// Creates the accounts of a new tenant, both modes.
pub async fn open_tenant_accounts(
    tx: &mut Tx,
    tenant: &TenantId,
) -> Result<(), crate::storage::DbError> {
    for mode in [Mode::Live, Mode::Test] {
        Db::ensure_account(
            tx,
            &available_account(tenant, mode),
            Some(tenant),
            mode,
            "available",
        )
        .await?;
        Db::ensure_account(
            tx,
            &holds_account(tenant, mode),
            Some(tenant),
            mode,
            "holds",
        )
        .await?;
    }
    Ok(())
}

/// Credits a tenant from the system's grant account. Returns the journal transaction id.
pub async fn grant(
    tx: &mut Tx,
    tenant: &TenantId,
    mode: Mode,
    amount: Credits,
    promotional: bool,
    memo: &str,
    actor: &str,
) -> Result<TxnId, LedgerError> {
    let grants = grants_account(mode);
    Db::ensure_account(tx, &grants, None, mode, "grants").await?;
    let available = if promotional {
        let account = promotional_account(tenant, mode);
        Db::ensure_account(tx, &account, Some(tenant), mode, "promotional").await?;
        account
    } else {
        available_account(tenant, mode)
    };
    Db::lock_accounts(tx, &[&grants, &available]).await?;
    let posting = Posting {
        kind: "grant",
        tenant: Some(tenant),
        mode,
        video: None,
        memo: Some(memo),
        actor: Some(actor),
    };
    Ok(Db::post(tx, &posting, &pair(&grants, &available, amount)?, &[]).await?)
}

/// Reserves `amount` for a job from `source` (the tenant's balance or an end-user wallet); the
/// hold remembers its source, so a refund or void goes back there. Refused when it would take
/// the source below `floor`; the check and the debit are one conditional update, so concurrent
/// holds cannot overdraw.
pub async fn hold(
    tx: &mut Tx,
    tenant: &TenantId,
    mode: Mode,
    source: &str,
    floor: Credits,
    video: &VideoId,
    amount: Credits,
) -> Result<(), LedgerError> {
    // From the tenant's own balance, promotional credit goes first, then paid credit.
    let promotional = promotional_account(tenant, mode);
    let held = holds_account(tenant, mode);
    Db::lock_accounts(tx, &[&promotional, source, &held]).await?;
    let from_promo = if source == available_account(tenant, mode) {
        Credits::from_stored(Db::take_up_to(tx, &promotional, amount.get()).await?)
    } else {
        Credits::ZERO
    };
    let rest = amount.checked_sub(from_promo)?;
    if rest.is_positive() && !Db::debit_above_floor(tx, source, rest.get(), floor.get()).await? {
        // The caller rolls the transaction back, returning any promotional part taken.
        let current = Credits::from_stored(Db::account_balance(tx, source).await?);
        return Err(LedgerError::Insufficient {
            needed: amount,
            available: current.checked_sub(floor)?.checked_add(from_promo)?,
        });
    }
    Db::insert_hold(tx, video, tenant, mode, amount, source, from_promo.get()).await?;
    let posting = Posting {
        kind: "hold",
        tenant: Some(tenant),
        mode,
        video: Some(video),
        memo: None,
        actor: None,
    };
    let mut entries = Vec::new();
    if from_promo.is_positive() {
        entries.push(Entry {
            account: &promotional,
            amount: from_promo.checked_neg()?.get(),
        });
    }
    if rest.is_positive() {
        entries.push(Entry {
            account: source,
            amount: rest.checked_neg()?.get(),
        });
    }
    entries.push(Entry {
        account: &held,
        amount: amount.get(),
    });
    // The debits already happened above; record them and credit `holds`.
    Db::post(tx, &posting, &entries, &[source, promotional.as_str()]).await?;
    Ok(())
}

/// What a transfer is, for the journal.
pub struct Transfer<'a> {
    pub kind: &'a str,
    pub memo: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// Moves credits between two accounts of one tenant (a wallet funding or withdrawal, an
/// operator's adjustment): the debit is refused below `floor`.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the posting.
pub async fn transfer(
    tx: &mut Tx,
    tenant: &TenantId,
    mode: Mode,
    from: &str,
    to: &str,
    floor: Credits,
    amount: Credits,
    what: &Transfer<'_>,
) -> Result<TxnId, LedgerError> {
    if !amount.is_positive() {
        return Err(MoneyError::OutOfRange.into());
    }
    Db::lock_accounts(tx, &[from, to]).await?;
    if !Db::debit_above_floor(tx, from, amount.get(), floor.get()).await? {
        let current = Credits::from_stored(Db::account_balance(tx, from).await?);
        return Err(LedgerError::Insufficient {
            needed: amount,
            available: current.checked_sub(floor)?,
        });
    }
    let posting = Posting {
        kind: what.kind,
        tenant: Some(tenant),
        mode,
        video: None,
        memo: what.memo,
        actor: what.actor,
    };
    Ok(Db::post(tx, &posting, &pair(from, to, amount)?, &[from]).await?)
}

/// Gives `amount` of a video's charge back from revenue to the accounts its hold came from,
/// after `refunded` already went back: `charged` and `refunded` place it in the hold's
/// unwinding order (see the module doc).
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the posting.
pub async fn refund(
    tx: &mut Tx,
    hold: &HoldRow,
    video: &VideoId,
    charged: Credits,
    refunded: Credits,
    amount: Credits,
    what: &Transfer<'_>,
) -> Result<TxnId, LedgerError> {
    // What already went back: the part of the hold its capture did not take, then refunds.
    let unspent = Credits::from_stored(hold.amount).checked_sub(charged)?;
    let (to_paid, to_promo) = hold.return_split(unspent.checked_add(refunded)?, amount)?;
    let revenue = revenue_account(hold.mode);
    let source = hold.source_account();
    let promotional = promotional_account(&hold.tenant, hold.mode);
    let mut entries = vec![Entry {
        account: &revenue,
        amount: amount.checked_neg()?.get(),
    }];
    if to_paid.is_positive() {
        entries.push(Entry {
            account: &source,
            amount: to_paid.get(),
        });
    }
    if to_promo.is_positive() {
        Db::ensure_account(
            tx,
            &promotional,
            Some(&hold.tenant),
            hold.mode,
            "promotional",
        )
        .await?;
        entries.push(Entry {
            account: &promotional,
            amount: to_promo.get(),
        });
    }
    let posting = Posting {
        kind: what.kind,
        tenant: Some(&hold.tenant),
        mode: hold.mode,
        video: Some(video),
        memo: what.memo,
        actor: what.actor,
    };
    let accounts: Vec<&str> = entries.iter().map(|entry| entry.account).collect();
    Db::lock_accounts(tx, &accounts).await?;
    Ok(Db::post(tx, &posting, &entries, &[]).await?)
}

/// Settles a job's hold for `charge` (at most the hold). Returns the amount captured, or
/// `None` when the hold was already settled (a repeated capture is a no-op).
pub async fn capture(
    tx: &mut Tx,
    video: &VideoId,
    charge: Credits,
) -> Result<Option<Credits>, LedgerError> {
    settle(tx, video, Some(charge)).await
}

/// Releases a job's hold in full. Returns false when it was already settled.
pub async fn void(tx: &mut Tx, video: &VideoId) -> Result<bool, LedgerError> {
    Ok(settle(tx, video, None).await?.is_some())
}

/// Settles a job's hold once: a capture (`Some(charge)`) moves the charge, at most the hold,
/// to revenue; a void (`None`) charges nothing. What is not charged goes back to the accounts
/// the hold came from, paid credit first, then promotional. `None` when already settled.
async fn settle(
    tx: &mut Tx,
    video: &VideoId,
    capture: Option<Credits>,
) -> Result<Option<Credits>, LedgerError> {
    let (state, kind) = match capture {
        Some(_) => ("posted", "capture"),
        None => ("voided", "void"),
    };
    let Some(hold) = Db::settle_hold(tx, video, state, capture.map(Credits::get)).await? else {
        return Ok(None);
    };
    let held_amount = Credits::from_stored(hold.amount);
    let charge = capture.map_or(Credits::ZERO, |c| c.max(Credits::ZERO).min(held_amount));
    let held = holds_account(&hold.tenant, hold.mode);
    let available = hold.source_account();
    let revenue = revenue_account(hold.mode);
    let promotional = promotional_account(&hold.tenant, hold.mode);
    let posting = Posting {
        kind,
        tenant: Some(&hold.tenant),
        mode: hold.mode,
        video: Some(video),
        memo: None,
        actor: None,
    };
    if capture.is_some() {
        Db::ensure_account(tx, &revenue, None, hold.mode, "revenue").await?;
    }
    let mut touched = vec![held.as_str(), available.as_str(), promotional.as_str()];
    if capture.is_some() {
        touched.push(&revenue);
    }
    Db::lock_accounts(tx, &touched).await?;
    let mut entries = vec![Entry {
        account: &held,
        amount: held_amount.checked_neg()?.get(),
    }];
    if capture.is_some() {
        entries.push(Entry {
            account: &revenue,
            amount: charge.get(),
        });
    }
    let (to_paid, to_promo) = hold.return_split(Credits::ZERO, held_amount.checked_sub(charge)?)?;
    if to_paid.is_positive() {
        entries.push(Entry {
            account: &available,
            amount: to_paid.get(),
        });
    }
    if to_promo.is_positive() {
        entries.push(Entry {
            account: &promotional,
            amount: to_promo.get(),
        });
    }
    Db::post(tx, &posting, &entries, &[]).await?;
    Ok(Some(charge))
}

/// A page of a tenant's journal lines in one mode, newest first: at most `limit` (1-100)
/// lines before the line `before`, and whether more follow.
pub async fn entries(
    db: &Db,
    tenant: &TenantId,
    mode: Mode,
    before: Option<i64>,
    limit: i64,
) -> crate::error::Result<(Vec<crate::domain::billing::ledger::EntryView>, bool)> {
    if !(1..=100).contains(&limit) {
        return Err(crate::error::Error::invalid(
            "limit",
            "limit must be from 1 to 100",
        ));
    }
    Ok(db.tenant_entries(tenant, mode, before, limit).await?)
}

pub async fn balance(
    db: &Db,
    tenant: &TenantId,
    mode: Mode,
) -> Result<Balance, crate::storage::DbError> {
    let accounts = [
        available_account(tenant, mode),
        holds_account(tenant, mode),
        promotional_account(tenant, mode),
    ];
    let read = db
        .account_balances(&accounts.each_ref().map(String::as_str))
        .await?;
    let [available, held, promotional] = [0, 1, 2].map(|i| read.get(i).copied().unwrap_or(0));
    Ok(Balance {
        available: Credits::from_stored(available),
        held: Credits::from_stored(held),
        promotional: Credits::from_stored(promotional),
    })
}

impl HoldRow {
    /// The account the hold was taken from.
    pub fn source_account(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| available_account(&self.tenant, self.mode))
    }

    /// Splits `returning` credits going back from this hold, after `returned_before` already
    /// went back, into (to the source, to promotional credit): the source gets everything
    /// back until the paid part is, promotional credit only what comes back beyond it.
    pub fn return_split(
        &self,
        returned_before: Credits,
        returning: Credits,
    ) -> Result<(Credits, Credits), MoneyError> {
        let promo_part = Credits::from_stored(self.promo_part).max(Credits::ZERO);
        let paid_part = Credits::from_stored(self.amount)
            .checked_sub(promo_part)?
            .max(Credits::ZERO);
        let returning = returning.max(Credits::ZERO);
        let before = returned_before.max(Credits::ZERO);
        let after = before.checked_add(returning)?;
        let to_paid = after.min(paid_part).checked_sub(before.min(paid_part))?;
        Ok((to_paid, returning.checked_sub(to_paid)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(amount: i64, promo_part: i64) -> HoldRow {
        HoldRow {
            tenant: TenantId::from_db("ten_1".into()),
            mode: Mode::Test,
            amount,
            promo_part,
            source: None,
        }
    }

    fn split(hold: &HoldRow, before: i64, returning: i64) -> (i64, i64) {
        let (paid, promo) = hold
            .return_split(
                Credits::from_stored(before),
                Credits::from_stored(returning),
            )
            .expect("split");
        (paid.get(), promo.get())
    }

    #[test]
    fn credits_go_back_to_the_paid_source_first_then_to_promotional_credit() {
        let mixed = hold(200, 150);
        assert_eq!(split(&mixed, 0, 30), (30, 0));
        assert_eq!(split(&mixed, 30, 40), (20, 20));
        assert_eq!(split(&mixed, 70, 130), (0, 130));
        assert_eq!(split(&mixed, 0, 200), (50, 150));
        assert_eq!(split(&hold(200, 200), 0, 200), (0, 200));
        assert_eq!(split(&hold(200, 0), 0, 200), (200, 0));
    }

    #[test]
    fn returning_in_parts_splits_exactly_as_returning_at_once() {
        let mixed = hold(1_000, 337);
        for step in [1, 7, 100, 333] {
            let (mut paid, mut promo, mut before) = (0, 0, 0);
            while before < 1_000 {
                let part = step.min(1_000 - before);
                let (p, q) = split(&mixed, before, part);
                (paid, promo, before) = (paid + p, promo + q, before + part);
            }
            assert_eq!((paid, promo), (663, 337), "in steps of {step}");
        }
    }
}
