//! The audited change: the one way the gateway's state is changed. A change's own writes, the audit
//! event that records it and, for state that filters hold, the next state version share one
//! transaction, so no change lands without its event; the change is announced in this process only
//! after that transaction committed, so no one hears of a change that did not happen. Dropped before
//! it commits, a change rolls back: nothing written, nothing audited, nothing announced.
//!
//! ```text
//! let mut tx = recorder.begin().await?;
//! sqlx::query("UPDATE ...").bind(id).execute(&mut *tx).await?;
//! tx.commit_announcing(event, Change::TenantSettings { tenant }).await?;
//! ```

use std::ops::{Deref, DerefMut};

use intentgate_core::audit::AuditEvent;
use sqlx::{Any, AnyConnection, Transaction};

use super::store;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};

/// A privileged-access ticket (the `X-IntentGate-Elevation-Id` of an admin request): recorded as the
/// `elevation_id` of the audit event of every change the request makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElevationId(String);

impl ElevationId {
    pub const MAX_CHARS: usize = 128;

    /// 1 to 128 printable ASCII characters (space to `~`): a ticket number, never free text that could
    /// smuggle control characters into logs or exports.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let refused = || {
            Error::bad_request(format!(
                "the elevation id (X-IntentGate-Elevation-Id) must be 1 to {} printable ASCII characters",
                Self::MAX_CHARS
            ))
        };
        let printable = bytes.iter().all(|b| matches!(b, b' '..=b'~'));
        if bytes.is_empty() || bytes.len() > Self::MAX_CHARS || !printable {
            return Err(refused());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| refused())?;
        Ok(ElevationId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where audited changes are made: the database, this process's announcements, and the elevation
/// ticket of the request making them, if it gave one. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    db: Db,
    changes: Changes,
    elevation: Option<ElevationId>,
}

impl Recorder {
    pub fn new(db: Db, changes: Changes) -> Self {
        Recorder {
            db,
            changes,
            elevation: None,
        }
    }

    pub fn with_elevation(mut self, elevation: Option<ElevationId>) -> Self {
        self.elevation = elevation;
        self
    }

    /// For the reads a change makes before it begins (and after it committed).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Begins a change: a write transaction.
    pub async fn begin(&self) -> Result<AuditedChange<'_>> {
        Ok(AuditedChange {
            recorder: self,
            tx: self.db.begin().await?,
        })
    }

    /// The change that deletes the row of `table` with this `id`, recorded by `event`; `missing` is
    /// the error when there is no such row (deleted meanwhile), and then nothing is audited.
    pub async fn delete(
        &self,
        table: &'static str,
        id: &str,
        event: AuditEvent,
        missing: impl FnOnce() -> Error,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(missing());
        }
        tx.commit(event).await
    }
}

/// A change in progress: its statements run on it as on a transaction (`&mut *tx`). Finish it with
/// [`commit`](Self::commit) or [`commit_announcing`](Self::commit_announcing); both need the event
/// that records it.
#[must_use = "a change that is not committed rolls back"]
pub struct AuditedChange<'r> {
    recorder: &'r Recorder,
    tx: Transaction<'static, Any>,
}

impl Deref for AuditedChange<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for AuditedChange<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl AuditedChange<'_> {
    /// Appends `event` to its tenant's chain and commits: for changes filters do not hold.
    pub async fn commit(self, event: AuditEvent) -> Result<()> {
        self.finish(event, None).await.map(|_| ())
    }

    /// Appends `event`, records `change` as the next state version (for filters, and on Postgres for
    /// the other replicas at commit), commits, then announces `change` in this process. Returns the
    /// version (0 for a change announced in process only).
    pub async fn commit_announcing(self, event: AuditEvent, change: Change) -> Result<u64> {
        self.finish(event, Some(change)).await
    }

    async fn finish(mut self, mut event: AuditEvent, change: Option<Change>) -> Result<u64> {
        if let Some(elevation) = &self.recorder.elevation {
            event.elevation_id = elevation.0.clone();
        }
        // The chain head's lock, then the version row's: always in this order, and always last.
        store::append_in(&mut self.tx, &[event]).await?;
        let version = match &change {
            Some(change) => {
                Changes::record(&mut self.tx, self.recorder.db.backend(), change).await?
            }
            None => 0,
        };
        self.tx.commit().await?;
        if let Some(change) = change {
            self.recorder.changes.publish(version, change);
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elevation_ids_are_short_printable_ascii() {
        let longest = "A".repeat(ElevationId::MAX_CHARS);
        assert_eq!(
            ElevationId::parse(longest.as_bytes()).unwrap().as_str(),
            longest
        );
        assert!(ElevationId::parse(b"PAM-2026-0042 (break glass)").is_ok());
        for bad in [
            String::new(),
            "A".repeat(ElevationId::MAX_CHARS + 1),
            "tab\there".into(),
            "del\u{7f}".into(),
            "caf\u{e9}".into(),
            "line\nbreak".into(),
        ] {
            let err = ElevationId::parse(bad.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::BadRequest(_)), "{bad:?}: {err}");
        }
        assert!(ElevationId::parse(&[b'P', 0xff]).is_err());
    }
}
