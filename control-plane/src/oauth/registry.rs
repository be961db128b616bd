//! What the authorization server's admin resources (clients, trusted issuers, exchange rules) share:
//! their lists and lookups confined to the tenants an admin may see, their JSON columns, and the
//! compare-and-set write of an update.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use intentgate_core::audit::AuditEvent;

use crate::audit::{AuditedChange, Recorder};
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};

/// A row that belongs to one tenant.
pub trait Tenanted {
    fn tenant(&self) -> &str;
}

/// One resource's table and how its rows read.
pub struct Table<T> {
    pub name: &'static str,
    /// Singular, for messages: "client", "trusted issuer", ...
    pub noun: &'static str,
    pub from_row: fn(&AnyRow) -> Result<T>,
}

impl<T> Table<T> {
    /// Rows of one tenant (`None`: all), newest first.
    pub async fn list(&self, db: &Db, scope: Option<&str>, page: Page) -> Result<Paged<T>> {
        let sql = format!(
            "SELECT * FROM {} WHERE ($1 = '*' OR tenant = $1) AND pos < $2 \
             ORDER BY pos DESC LIMIT $3",
            self.name
        );
        let query = sqlx::query(&sql).bind(scope.unwrap_or("*"));
        page.run(db, query, |row| {
            Ok((row.try_get("pos")?, (self.from_row)(row)?))
        })
        .await
    }

    /// A row by id, whichever its tenant.
    pub async fn find(&self, db: &Db, id: &str) -> Result<Option<T>> {
        let mut conn = db.pool().acquire().await?;
        self.find_in(&mut conn, id).await
    }

    /// A row by id as a change in progress sees it.
    pub async fn find_in(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<T>> {
        let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1", self.name))
            .bind(id)
            .fetch_optional(conn)
            .await?;
        row.map(|r| (self.from_row)(&r)).transpose()
    }

    pub fn gone(&self, id: &str) -> Error {
        Error::not_found(format!("no {} {id}", self.noun))
    }

    /// After an update that matched no row: deleted meanwhile (404), or changed (409).
    pub async fn lost_update(&self, db: &Db, id: &str) -> Error {
        match self.find(db, id).await {
            Ok(Some(_)) => Error::Conflict(format!(
                "{} {id} changed while this update was made; read it again and retry",
                self.noun
            )),
            Ok(None) => self.gone(id),
            Err(e) => e,
        }
    }
}

impl<T: Tenanted> Table<T> {
    /// A row the admin may see; another tenant's is reported absent.
    pub async fn get(&self, db: &Db, admin: &Admin, id: &str) -> Result<T> {
        match self.find(db, id).await? {
            Some(row) if admin.may_access(row.tenant()) => Ok(row),
            _ => Err(self.gone(id)),
        }
    }
}

impl<T> Table<T> {
    /// Ends a change that wrote row `id` (`written`: it matched a row): the row as the change sees
    /// it, audited by the event `event` makes of it, committed. A write that matched nothing was lost
    /// to a concurrent change (409) or deletion (404), and nothing is committed or audited.
    pub async fn commit_written(
        &self,
        db: &Db,
        mut tx: AuditedChange<'_>,
        id: &str,
        written: bool,
        event: impl FnOnce(&T) -> Result<AuditEvent>,
    ) -> Result<T> {
        if !written {
            drop(tx);
            return Err(self.lost_update(db, id).await);
        }
        let row = self
            .find_in(&mut tx, id)
            .await?
            .ok_or_else(|| self.gone(id))?;
        tx.commit(event(&row)?).await?;
        Ok(row)
    }

    /// Deletes row `id` of `tenant`, audited as `action` by `admin` with `reason`.
    pub async fn delete(
        &self,
        recorder: &Recorder,
        admin: &Admin,
        tenant: &str,
        id: &str,
        action: &str,
        reason: String,
    ) -> Result<()> {
        let event = crate::audit::record::admin(tenant, action, &admin.actor(), reason)?;
        recorder
            .delete(self.name, id, event, || self.gone(id))
            .await
    }
}

/// A JSON column's text.
pub fn to_column<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("json column: {e}")))
}

/// A JSON column, read back.
pub fn from_column<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| Error::Internal(format!("stored {column}: {e}")))
}

/// A nullable JSON column, read back.
pub fn from_optional_column<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| Error::Internal(format!("stored {column}: {e}")))
    })
    .transpose()
}

/// The `updated_at` a change writes: now, but always past the one it read, so that two changes in
/// one millisecond still tell apart for the compare-and-set.
pub fn next_version(read: i64) -> i64 {
    crate::time::now_ms().max(read.saturating_add(1))
}

/// A column holding a count or a number of seconds.
pub fn unsigned(row: &AnyRow, column: &str) -> Result<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| Error::Internal(format!("stored {column} is negative")))
}

pub fn optional_unsigned(row: &AnyRow, column: &str) -> Result<Option<u64>> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| Error::Internal(format!("stored {column} is negative")))
        })
        .transpose()
}

pub fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A count or a number of seconds as a column value.
pub fn signed(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::bad_request("a number is out of range"))
}
