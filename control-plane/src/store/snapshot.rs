//! Read views: one consistent state of the database for a reader that needs several statements,
//! and several connections, to agree (verify reads a chain's head, its bounds and its ranges in
//! parallel).
//!
//! On Postgres a view is a `REPEATABLE READ, READ ONLY` transaction whose snapshot is exported
//! (`pg_export_snapshot`), and the parallel readers import it, as parallel `pg_dump` does: every
//! connection sees exactly the same committed rows, on a primary or on a hot standby. On SQLite a
//! view is a read transaction on one connection (its WAL snapshot); readers on other connections
//! stay within the bounds read in it, below which appends never change a row.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, Executor, PgConnection, Row, Transaction};

use super::pool::{Backend, Db};
use crate::error::{Error, Result};

/// An open read view; statements run on it as on a transaction (`&mut *view`).
pub struct ReadView {
    tx: Transaction<'static, Any>,
    exported: Option<String>,
}

impl ReadView {
    pub async fn open(db: &Db) -> Result<Self> {
        match db.backend() {
            Backend::Postgres => {
                let mut tx = db
                    .pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?;
                let id: String = sqlx::query("SELECT pg_export_snapshot() AS id")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("id")?;
                Ok(ReadView {
                    tx,
                    exported: Some(checked(id)?),
                })
            }
            Backend::Sqlite => Ok(ReadView {
                tx: db.pool().begin().await?,
                exported: None,
            }),
        }
    }

    /// The exported snapshot other Postgres connections import ([`import`]); `None` on SQLite.
    pub fn exported(&self) -> Option<&str> {
        self.exported.as_deref()
    }

    /// Ends the view. Other connections must have imported its snapshot before.
    pub async fn close(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Deref for ReadView {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for ReadView {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// Begins a read-only transaction on `conn` that sees the view exported as `snapshot`.
pub async fn import(conn: &mut PgConnection, snapshot: &str) -> Result<()> {
    let snapshot = checked(snapshot.to_owned())?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    // The identifier cannot be bound as a parameter; it is checked to be Postgres' own format.
    conn.execute(format!("SET TRANSACTION SNAPSHOT '{snapshot}'").as_str())
        .await?;
    Ok(())
}

/// A snapshot identifier as Postgres writes them (`00000003-0000001B-1`): hex digits and dashes.
fn checked(id: String) -> Result<String> {
    let valid =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if valid {
        Ok(id)
    } else {
        Err(Error::Internal(format!(
            "unexpected snapshot identifier {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_snapshot_identifiers_are_accepted() {
        assert!(checked("00000003-0000001B-1".into()).is_ok());
        for bad in ["", "1'; DROP TABLE audit_events; --", "00000003 0000001B"] {
            assert!(checked(bad.into()).is_err(), "{bad}");
        }
    }
}
