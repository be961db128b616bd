//! Activity: the gateway's decisions over a window of the audit log, per tenant: how many calls
//! were allowed, denied, escalated (and escalations approved or rejected), and the ten agents and
//! tools denied most. The flat form has a `summary` row per tenant, then `blocked_agent` and
//! `blocked_tool` rows.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{Report, Table, Window};
use crate::error::Result;
use crate::store::Db;

pub const TOP: usize = 10;

#[derive(Debug, Clone, Serialize)]
struct Blocked {
    name: String,
    denied: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Activity {
    tenant: String,
    allow: i64,
    deny: i64,
    escalate: i64,
    approve: i64,
    reject: i64,
    total: i64,
    top_blocked_agents: Vec<Blocked>,
    top_blocked_tools: Vec<Blocked>,
}

const COLUMNS: &[&str] = &[
    "tenant", "section", "name", "allow", "deny", "escalate", "approve", "reject", "total",
];

/// Runtime decisions only: admin changes are audit events too, but not agent activity.
const EVENTS: &str =
    "event IN ('intentgate.tool_call', 'intentgate.request', 'intentgate.approval')";

async fn top(
    db: &Db,
    scope: &str,
    window: &Window,
    column: &str,
) -> Result<BTreeMap<String, Vec<Blocked>>> {
    let rows = sqlx::query(&format!(
        "SELECT tenant, {column} AS name, COUNT(*) AS n FROM audit_events \
         WHERE ($1 = '*' OR tenant = $1) AND ts >= $2 AND ts < $3 AND {EVENTS} \
         AND decision = 'deny' AND {column} <> '' GROUP BY tenant, {column} ORDER BY n DESC, name"
    ))
    .bind(scope)
    .bind(&window.since)
    .bind(&window.until)
    .fetch_all(db.pool())
    .await?;
    let mut out: BTreeMap<String, Vec<Blocked>> = BTreeMap::new();
    for row in rows {
        let list = out.entry(row.try_get("tenant")?).or_default();
        if list.len() < TOP {
            list.push(Blocked {
                name: row.try_get("name")?,
                denied: row.try_get("n")?,
            });
        }
    }
    Ok(out)
}

pub async fn build(db: &Db, scope: Option<&str>, window: &Window) -> Result<Report> {
    let scope = scope.unwrap_or("*");
    let mut tenants: BTreeMap<String, Activity> = BTreeMap::new();
    let rows = sqlx::query(&format!(
        "SELECT tenant, decision, COUNT(*) AS n FROM audit_events \
         WHERE ($1 = '*' OR tenant = $1) AND ts >= $2 AND ts < $3 AND {EVENTS} \
         GROUP BY tenant, decision"
    ))
    .bind(scope)
    .bind(&window.since)
    .bind(&window.until)
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        let tenant: String = row.try_get("tenant")?;
        let decision: String = row.try_get("decision")?;
        let n: i64 = row.try_get("n")?;
        let entry = tenants.entry(tenant.clone()).or_insert_with(|| Activity {
            tenant,
            ..Activity::default()
        });
        match decision.as_str() {
            "allow" => entry.allow += n,
            "deny" => entry.deny += n,
            "escalate" => entry.escalate += n,
            "approve" => entry.approve += n,
            "reject" => entry.reject += n,
            _ => {}
        }
        entry.total += n;
    }
    let mut agents = top(db, scope, window, "agent_id").await?;
    let mut tools = top(db, scope, window, "tool").await?;
    let mut rows = Vec::new();
    let list: Vec<Activity> = tenants
        .into_values()
        .map(|mut a| {
            a.top_blocked_agents = agents.remove(&a.tenant).unwrap_or_default();
            a.top_blocked_tools = tools.remove(&a.tenant).unwrap_or_default();
            rows.push(
                [a.tenant.clone(), "summary".into(), String::new()]
                    .into_iter()
                    .chain(
                        [a.allow, a.deny, a.escalate, a.approve, a.reject, a.total]
                            .map(|n| n.to_string()),
                    )
                    .collect(),
            );
            for (section, blocked) in [
                ("blocked_agent", &a.top_blocked_agents),
                ("blocked_tool", &a.top_blocked_tools),
            ] {
                for b in blocked {
                    rows.push(vec![
                        a.tenant.clone(),
                        section.into(),
                        b.name.clone(),
                        String::new(),
                        b.denied.to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                        b.denied.to_string(),
                    ]);
                }
            }
            a
        })
        .collect();
    let since = crate::time::parse_audit_ts(&window.since).map(crate::time::rfc3339);
    let until = crate::time::parse_audit_ts(&window.until).map(crate::time::rfc3339);
    Ok(Report {
        json: serde_json::json!({ "since": since, "until": until, "tenants": list }),
        table: Table {
            columns: COLUMNS,
            rows,
        },
    })
}
