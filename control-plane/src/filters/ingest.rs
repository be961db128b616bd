//! Audit batches from filters: each event must be the one its record names (id and tenant) and
//! satisfy the store's rules, else it is rejected by id; the rest go to their tenants' chains through
//! the idempotent append, so a batch sent again is written once. What a filter had to drop while its
//! buffer was full is counted, never silent.

use intentgate_core::audit::AuditEvent;
use intentgate_proto::v1;

use super::registry;
use crate::audit;
use crate::error::{Error, Result};
use crate::store::Db;

/// Most events accepted in one audit batch.
pub const MAX_BATCH: usize = 1000;

pub async fn batch(db: &Db, batch: &v1::AuditBatch) -> Result<v1::AuditAck> {
    if batch.events.len() > MAX_BATCH {
        return Err(Error::bad_request(format!(
            "at most {MAX_BATCH} events per batch"
        )));
    }
    let mut events = Vec::with_capacity(batch.events.len());
    let mut rejected_ids = Vec::new();
    for record in &batch.events {
        match serde_json::from_str::<AuditEvent>(&record.event_json) {
            Ok(event)
                if event.id == record.id
                    && event.tenant == record.tenant
                    && audit::store::check(&event).is_ok() =>
            {
                events.push(event);
            }
            _ => {
                tracing::warn!(filter = %batch.filter_id, id = %record.id, "malformed audit event rejected");
                rejected_ids.push(record.id.clone());
            }
        }
    }
    let stored = audit::append(db, &events).await?;
    registry::audit_batch(db, &batch.filter_id, stored.len() as u64, batch.dropped).await?;
    if batch.dropped > 0 {
        tracing::error!(filter = %batch.filter_id, dropped = batch.dropped, "a filter dropped audit events: its buffer overflowed");
    }
    Ok(v1::AuditAck {
        stored_ids: stored.into_iter().map(|a| a.id).collect(),
        rejected_ids,
    })
}
