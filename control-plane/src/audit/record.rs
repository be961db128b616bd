//! The events that admin changes write about themselves: kind `intentgate.admin` with decision
//! `allow` (or `intentgate.approval` with `approve`/`reject`), the action in `method`
//! (`admin/mint`, ...), the actor in `decided_by` and the details in `reason`.

use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;

use crate::error::Result;
use crate::{ids, time};

/// An admin change to `tenant`'s state.
pub fn admin(tenant: &str, action: &str, actor: &str, reason: String) -> Result<AuditEvent> {
    event(
        EventKind::Admin,
        AuditDecision::Allow,
        tenant,
        action,
        actor,
        reason,
    )
}

pub fn event(
    kind: EventKind,
    decision: AuditDecision,
    tenant: &str,
    action: &str,
    actor: &str,
    reason: String,
) -> Result<AuditEvent> {
    let mut event = AuditEvent::new(ids::new_id()?, time::now_ms(), kind, decision);
    event.tenant = tenant.to_owned();
    event.method = format!("admin/{action}");
    event.decided_by = actor.to_owned();
    event.reason = reason;
    Ok(event)
}
