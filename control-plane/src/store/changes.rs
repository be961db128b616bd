//! State changes that filters must learn about. Each is recorded inside the transaction that makes
//! it — the state version is bumped and the change logged, and on Postgres other replicas are
//! notified at commit — then announced in process after commit (the audited change of `audit::change` does both). The
//! filter sync (gRPC push, Postgres `LISTEN`) follows the versions instead of each endpoint knowing
//! about filters.

use sqlx::{AnyConnection, Row};
use tokio::sync::broadcast;

use crate::error::Result;
use crate::store::Backend;
use crate::time;

/// Subscribers that fall this far behind miss announcements and must read the change log.
const CAPACITY: usize = 1024;
/// The Postgres channel replicas listen on; the payload is the new version.
pub const CHANNEL: &str = "intentgate_sync";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The tenant's active policy is now this promotion (after a promote or a rollback).
    PolicyActivated {
        tenant: String,
        rego_sha256: String,
    },
    /// The tenant has no active policy: filters fail closed.
    PolicyCleared {
        tenant: String,
    },
    /// The tenant's settings or intent rules changed.
    TenantSettings {
        tenant: String,
    },
    TokenRevoked {
        tenant: String,
        jti: String,
    },
    /// The set of trusted signing keys changed (rotation, retirement).
    KeysChanged,
    /// Not part of the filter state: announced in process only.
    ApprovalDecided {
        tenant: String,
        id: String,
        approved: bool,
    },
}

impl Change {
    /// `(kind, tenant, jti)` as the change log stores it; `None` for in-process-only changes.
    fn log_entry(&self) -> Option<(&'static str, &str, &str)> {
        match self {
            Change::PolicyActivated { tenant, .. }
            | Change::PolicyCleared { tenant }
            | Change::TenantSettings { tenant } => Some(("tenant", tenant, "")),
            Change::TokenRevoked { tenant, jti } => Some(("revocation", tenant, jti)),
            Change::KeysChanged => Some(("keys", "", "")),
            Change::ApprovalDecided { .. } => None,
        }
    }
}

/// A committed change and the state version it produced (0 for in-process-only changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub version: u64,
    pub change: Change,
}

#[derive(Debug, Clone)]
pub struct Changes {
    sender: broadcast::Sender<Committed>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    pub fn new() -> Self {
        Changes {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Records `change` in the transaction on `conn`: the next state version, an entry in the
    /// change log, and (Postgres) a notification delivered to other replicas at commit.
    /// Call it last in the transaction: the version row is the last lock taken, always.
    pub async fn record(
        conn: &mut AnyConnection,
        backend: Backend,
        change: &Change,
    ) -> Result<u64> {
        let Some((kind, tenant, jti)) = change.log_entry() else {
            return Ok(0);
        };
        let version: i64 = sqlx::query(
            "UPDATE sync_version SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get("version")?;
        sqlx::query(
            "INSERT INTO sync_changes (version, kind, tenant, jti, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version)
        .bind(kind)
        .bind(tenant)
        .bind(jti)
        .bind(time::now_ms())
        .execute(&mut *conn)
        .await?;
        if backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(version.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Ok(u64::try_from(version).unwrap_or(0))
    }

    /// Announces a committed change in this process. Having no subscriber is normal.
    pub fn publish(&self, version: u64, change: Change) {
        tracing::info!(version, ?change, "state change");
        let _ = self.sender.send(Committed { version, change });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.sender.subscribe()
    }
}
