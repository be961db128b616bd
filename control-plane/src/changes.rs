//! State changes that filters must learn about. Every promote, clear, rollback, revocation and
//! approval decision is announced here after it commits; the filter sync (gRPC push, Postgres
//! `LISTEN`/`NOTIFY` between replicas) subscribes instead of each endpoint knowing about it.

use tokio::sync::broadcast;

/// Subscribers that fall this far behind miss changes and must resynchronise from the database.
const CAPACITY: usize = 1024;

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
    TokenRevoked {
        tenant: String,
        jti: String,
    },
    ApprovalDecided {
        tenant: String,
        id: String,
        approved: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
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

    /// Announces a committed change. Having no subscriber is normal.
    pub fn publish(&self, change: Change) {
        tracing::info!(?change, "state change");
        let _ = self.sender.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
