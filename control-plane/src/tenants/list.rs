//! The tenant inventory: every tenant that has an admin token or any state here.

use serde::Serialize;
use sqlx::Row;

use crate::auth::{Admin, AdminTokens};
use crate::error::Result;
use crate::store::Db;
use crate::{time, validate};

/// `recent_event_count` counts audit events of the last 24 hours.
pub const RECENT_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tenant {
    pub name: String,
    pub active_policy_sha: Option<String>,
    pub pending_approvals: i64,
    pub recent_event_count: i64,
}

pub async fn list(db: &Db, tokens: &AdminTokens, admin: &Admin) -> Result<Vec<Tenant>> {
    let mut names: Vec<String> = match admin {
        Admin::Tenant(own) => vec![own.clone()],
        Admin::Super => {
            let rows = sqlx::query(
                "SELECT tenant FROM tokens UNION SELECT tenant FROM policy_drafts \
                 UNION SELECT tenant FROM active_policies UNION SELECT tenant FROM approvals \
                 UNION SELECT tenant FROM audit_chain_heads UNION SELECT tenant FROM revocations",
            )
            .fetch_all(db.pool())
            .await?;
            let mut names = rows
                .iter()
                .map(|r| r.try_get::<String, _>("tenant"))
                .collect::<Result<Vec<_>, _>>()?;
            names.extend(tokens.tenants().map(str::to_owned));
            // The control plane's own chains (`_system`, key rotations) are not tenants.
            names.retain(|name| validate::assignable_tenant(name).is_ok());
            names
        }
    };
    names.sort();
    names.dedup();
    let since = intentgate_core::time::rfc3339_millis(time::now_ms() - RECENT_WINDOW_MS);
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let row = sqlx::query(
            "SELECT \
               (SELECT p.rego_sha256 FROM active_policies a \
                  JOIN policy_promotions p ON p.pos = a.promotion_pos WHERE a.tenant = $1) AS sha, \
               (SELECT COUNT(*) FROM approvals WHERE tenant = $1 AND status = 'pending' \
                  AND expires_at > $3) AS pending, \
               (SELECT COUNT(*) FROM audit_events WHERE tenant = $1 AND ts >= $2) AS recent",
        )
        .bind(&name)
        .bind(&since)
        .bind(time::now_ms())
        .fetch_one(db.pool())
        .await?;
        out.push(Tenant {
            active_policy_sha: row.try_get("sha")?,
            pending_approvals: row.try_get("pending")?,
            recent_event_count: row.try_get("recent")?,
            name,
        });
    }
    Ok(out)
}
