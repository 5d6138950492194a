//! The statement API every query in `storage/` is written in, run on either engine: sqlx
//! (PostgreSQL, and SQLite's longer reads) or SQLite called in place ([`super::inline`]).
//! [`super::conn`] decides which engine a statement runs on.
//!
//! Trade-off: sqlx runs every SQLite statement on the connection's own thread, and on a busy
//! core each of those round trips costs two context switches, several times the work of the
//! statement itself. A create is about fifteen statements. Running them in place, on the
//! request's thread, makes a create several times cheaper on SQLite, at the price of this
//! narrow statement layer of our own. It stays small: two argument types (integers and text,
//! both nullable), and rows decoded by name or position into those same types.

use std::borrow::Cow;

use rusqlite::types::Value;
use sqlx::any::AnyRow;
use sqlx::Row as _;

pub use super::exec::Row;
use super::exec::{Arg, Exec, On};
use super::DbError;

/// A statement with `$n` placeholders and its arguments.
pub struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

pub fn query(sql: impl Into<Cow<'static, str>>) -> Stmt {
    Stmt {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Stmt {
    pub fn bind(mut self, arg: impl Into<Arg>) -> Stmt {
        self.args.push(arg.into());
        self
    }

    fn sqlx(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_deref()),
            };
        }
        query
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute(self, on: &mut impl On) -> Result<u64, DbError> {
        match on.on()? {
            Exec::Sqlx(tx) => Ok(self.sqlx().execute(&mut **tx).await?.rows_affected()),
            Exec::Pool(pool) => Ok(self.sqlx().execute(pool).await?.rows_affected()),
            Exec::Inline(conn) => super::inline::execute(conn, &self.sql, &self.args),
        }
    }

    pub async fn fetch_all(self, on: &mut impl On) -> Result<Vec<Row>, DbError> {
        let rows = match on.on()? {
            Exec::Sqlx(tx) => self.sqlx().fetch_all(&mut **tx).await?,
            Exec::Pool(pool) => self.sqlx().fetch_all(pool).await?,
            Exec::Inline(conn) => return super::inline::fetch(conn, &self.sql, &self.args),
        };
        Ok(rows.into_iter().map(Row::Any).collect())
    }

    pub async fn fetch_optional(self, on: &mut impl On) -> Result<Option<Row>, DbError> {
        Ok(match on.on()? {
            Exec::Sqlx(tx) => self.sqlx().fetch_optional(&mut **tx).await?.map(Row::Any),
            Exec::Pool(pool) => self.sqlx().fetch_optional(pool).await?.map(Row::Any),
            Exec::Inline(conn) => super::inline::fetch(conn, &self.sql, &self.args)?
                .into_iter()
                .next(),
        })
    }

    pub async fn fetch_one(self, on: &mut impl On) -> Result<Row, DbError> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound.into())
    }
}

/// A column type both executors decode.
pub trait Col: Sized {
    fn from_any<I: sqlx::ColumnIndex<AnyRow>>(row: &AnyRow, index: I) -> Result<Self, DbError>;
    fn from_value(value: &Value) -> Result<Self, DbError>;
}

fn mismatch(expected: &str, value: &Value) -> DbError {
    sqlx::Error::Decode(format!("expected {expected}, found {:?}", value.data_type()).into()).into()
}

impl Col for i64 {
    fn from_any<I: sqlx::ColumnIndex<AnyRow>>(row: &AnyRow, index: I) -> Result<i64, DbError> {
        Ok(row.try_get(index)?)
    }
    fn from_value(value: &Value) -> Result<i64, DbError> {
        match value {
            Value::Integer(v) => Ok(*v),
            other => Err(mismatch("an integer", other)),
        }
    }
}

impl Col for String {
    fn from_any<I: sqlx::ColumnIndex<AnyRow>>(row: &AnyRow, index: I) -> Result<String, DbError> {
        Ok(row.try_get(index)?)
    }
    fn from_value(value: &Value) -> Result<String, DbError> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl<T: Col> Col for Option<T> {
    fn from_any<I: sqlx::ColumnIndex<AnyRow>>(
        row: &AnyRow,
        index: I,
    ) -> Result<Option<T>, DbError> {
        use sqlx::ValueRef as _;
        if row.try_get_raw(&index)?.is_null() {
            return Ok(None);
        }
        T::from_any(row, index).map(Some)
    }
    fn from_value(value: &Value) -> Result<Option<T>, DbError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Reading a row's columns by name, whichever executor produced it.
pub trait Get {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError>;

    /// A state column read through its type's `parse`: a value the type does not know is a
    /// decode error, never a guess at a neighbouring state.
    fn state<T>(&self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, DbError> {
        let raw: String = self.col(name)?;
        parse(&raw).ok_or_else(|| unknown_state(name, &raw))
    }

    /// A nullable state column, read like [`Get::state`].
    fn state_opt<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, DbError> {
        self.col::<Option<String>>(name)?
            .map(|raw| parse(&raw).ok_or_else(|| unknown_state(name, &raw)))
            .transpose()
    }

    /// A nullable JSON column: a value that does not read as `T` is a decode error, never
    /// taken for an absent one.
    fn json_opt<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, DbError> {
        self.col::<Option<String>>(name)?
            .map(|raw| {
                serde_json::from_str(&raw).map_err(|e| {
                    DbError::from(sqlx::Error::ColumnDecode {
                        index: name.to_string(),
                        source: Box::new(e),
                    })
                })
            })
            .transpose()
    }
}

fn unknown_state(column: &str, raw: &str) -> DbError {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("unknown {column} {raw:?}").into(),
    }
    .into()
}

impl Get for AnyRow {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError> {
        T::from_any(self, name)
    }
}

impl Get for Row {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError> {
        match self {
            Row::Any(row) => T::from_any(row, name),
            Row::Inline(row) => {
                let index = row
                    .names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_string()))?;
                T::from_value(&row.values[index])
            }
        }
    }
}

impl Row {
    /// A column by position.
    pub fn at<T: Col>(&self, index: usize) -> Result<T, DbError> {
        match self {
            Row::Any(row) => T::from_any(row, index),
            Row::Inline(row) => {
                let value = row
                    .values
                    .get(index)
                    .ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                        index,
                        len: row.values.len(),
                    })?;
                T::from_value(value)
            }
        }
    }
}
