//! What a statement runs on and what it carries, shared by the statement API
//! ([`super::sql`]), SQLite called in place ([`super::inline`]) and the connections that choose
//! between them ([`super::conn`]): the executor, a statement's arguments and the rows it
//! returns. It sits below all three, so that each of them depends on it and none on another
//! that depends back.

use std::sync::Arc;

use rusqlite::types::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::DbError;
use crate::types::ids::ProviderId;

/// A statement argument.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_string))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}

impl From<ProviderId> for Arg {
    fn from(v: ProviderId) -> Arg {
        Arg::from(v.as_str())
    }
}

impl From<Option<ProviderId>> for Arg {
    fn from(v: Option<ProviderId>) -> Arg {
        Arg::from(v.map(ProviderId::as_str))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<&String>> for Arg {
    fn from(v: Option<&String>) -> Arg {
        Arg::Text(v.cloned())
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

/// Where a statement runs; chosen by [`super::conn`], never above `storage/`.
pub enum Exec<'c> {
    /// In a sqlx transaction.
    Sqlx(&'c mut sqlx::Transaction<'static, sqlx::Any>),
    /// On a sqlx pool, outside a transaction.
    Pool(&'c AnyPool),
    /// On a SQLite connection, in place (in a transaction or not, as its owner decided).
    Inline(&'c mut rusqlite::Connection),
}

/// What a statement can run on: a transaction or a connection.
pub(super) trait On {
    fn on(&mut self) -> Result<Exec<'_>, DbError>;
}

impl On for Exec<'_> {
    fn on(&mut self) -> Result<Exec<'_>, DbError> {
        Ok(match self {
            Exec::Sqlx(tx) => Exec::Sqlx(tx),
            Exec::Pool(pool) => Exec::Pool(pool),
            Exec::Inline(conn) => Exec::Inline(conn),
        })
    }
}

/// A row from either executor.
pub enum Row {
    Any(AnyRow),
    Inline(InlineRow),
}

/// A row read in place: its column names (shared by the rows of one statement) and values.
pub struct InlineRow {
    pub(super) names: Arc<[String]>,
    pub(super) values: Vec<Value>,
}
