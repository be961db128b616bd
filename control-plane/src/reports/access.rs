//! Access: the agent register. Each agent → what it touches (gateway tools from the audit log,
//! AI services and MCP servers from discovery) → the tenant's active policy → its owner. The flat
//! form has one row per touch (one row with an empty touch for an agent that touched nothing).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{Report, Table};
use crate::discovery::inventory;
use crate::error::Result;
use crate::store::Db;
use crate::time;

#[derive(Debug, Clone, Serialize)]
struct Policy {
    name: String,
    sha256: String,
}

#[derive(Debug, Clone, Serialize)]
struct Touch {
    /// `tool` (through the gateway) or `service` (seen by a discovery source).
    kind: &'static str,
    name: String,
    calls: i64,
    allowed: i64,
    denied: i64,
    last_used: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Entry {
    tenant: String,
    agent: String,
    kind: String,
    governed: bool,
    owner: Option<String>,
    policy: Option<Policy>,
    touches: Vec<Touch>,
}

const COLUMNS: &[&str] = &[
    "tenant",
    "agent",
    "kind",
    "governed",
    "owner",
    "policy",
    "policy_sha256",
    "touch_kind",
    "touch",
    "calls",
    "allowed",
    "denied",
    "last_used",
];

pub async fn build(db: &Db, scope: Option<&str>) -> Result<Report> {
    let scope_text = scope.unwrap_or("*");
    let mut policies = BTreeMap::new();
    for row in sqlx::query(
        "SELECT a.tenant, p.name, p.rego_sha256 FROM active_policies a \
         JOIN policy_promotions p ON p.pos = a.promotion_pos WHERE ($1 = '*' OR a.tenant = $1)",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?
    {
        policies.insert(
            row.try_get::<String, _>("tenant")?,
            Policy {
                name: row.try_get("name")?,
                sha256: row.try_get("rego_sha256")?,
            },
        );
    }
    let mut tools: BTreeMap<(String, String), Vec<Touch>> = BTreeMap::new();
    for row in sqlx::query(
        "SELECT tenant, agent_id, tool, COUNT(*) AS calls, \
         SUM(CASE WHEN decision = 'allow' THEN 1 ELSE 0 END) AS allowed, \
         SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) AS denied, MAX(ts) AS last_ts \
         FROM audit_events WHERE ($1 = '*' OR tenant = $1) AND event = 'intentgate.tool_call' \
         AND agent_id <> '' AND tool <> '' GROUP BY tenant, agent_id, tool ORDER BY tool",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?
    {
        let last: Option<String> = row.try_get("last_ts")?;
        tools
            .entry((row.try_get("tenant")?, row.try_get("agent_id")?))
            .or_default()
            .push(Touch {
                kind: "tool",
                name: row.try_get("tool")?,
                calls: row.try_get("calls")?,
                allowed: row.try_get("allowed")?,
                denied: row.try_get("denied")?,
                last_used: last
                    .as_deref()
                    .and_then(time::parse_audit_ts)
                    .map(time::rfc3339),
            });
    }
    let mut entries = Vec::new();
    for agent in inventory::load(db, scope).await? {
        let mut touches = Vec::new();
        for name in [Some(agent.agent.clone()), agent.gateway_agent_id.clone()]
            .into_iter()
            .flatten()
        {
            touches.extend(
                tools
                    .remove(&(agent.tenant.clone(), name))
                    .unwrap_or_default(),
            );
        }
        touches.extend(agent.services.iter().map(|s| Touch {
            kind: "service",
            name: s.name.clone(),
            calls: 0,
            allowed: 0,
            denied: 0,
            last_used: None,
        }));
        entries.push(Entry {
            policy: policies.get(&agent.tenant).cloned(),
            tenant: agent.tenant,
            agent: agent.agent,
            kind: agent.kind,
            governed: agent.governed,
            owner: agent.owner,
            touches,
        });
    }
    let mut rows = Vec::new();
    for entry in &entries {
        let base = vec![
            entry.tenant.clone(),
            entry.agent.clone(),
            entry.kind.clone(),
            entry.governed.to_string(),
            entry.owner.clone().unwrap_or_default(),
            entry
                .policy
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            entry
                .policy
                .as_ref()
                .map(|p| p.sha256.clone())
                .unwrap_or_default(),
        ];
        if entry.touches.is_empty() {
            let mut row = base.clone();
            row.extend(std::iter::repeat_n(String::new(), 6));
            rows.push(row);
        }
        for touch in &entry.touches {
            let mut row = base.clone();
            row.extend([
                touch.kind.to_owned(),
                touch.name.clone(),
                touch.calls.to_string(),
                touch.allowed.to_string(),
                touch.denied.to_string(),
                touch.last_used.clone().unwrap_or_default(),
            ]);
            rows.push(row);
        }
    }
    Ok(Report {
        json: serde_json::json!({ "agents": entries }),
        table: Table {
            columns: COLUMNS,
            rows,
        },
    })
}
