//! The agent inventory: agents discovered in source logs merged with the agents the gateway has
//! seen (the audit log's `agent_id` of tool calls and requests). An agent is governed when the
//! gateway has decided its calls, under its own name or under the gateway identity an operator
//! linked it to. Owners and links are assigned through the admin API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{audit, time, validate};

/// Agents not seen for this long are `dormant`.
pub const DORMANT_MS: i64 = 30 * 86_400_000;
const MAX_OWNER: usize = 256;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Touch {
    pub service: String,
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GatewayActivity {
    pub allow: i64,
    pub deny: i64,
    pub escalate: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attestation {
    pub campaign_id: String,
    pub decision: String,
    pub attested_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Agent {
    pub tenant: String,
    pub agent: String,
    /// `agent`, `mcp_client`, `ai_app_user` (discovered) or `gateway_agent` (only in the audit log).
    pub kind: String,
    pub governed: bool,
    pub discovered: bool,
    pub gateway_agent_id: Option<String>,
    pub owner: Option<String>,
    pub attested: bool,
    pub attestation: Option<Attestation>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub user: Option<String>,
    pub device: Option<String>,
    pub client_ip: Option<String>,
    pub services: Vec<Touch>,
    pub sightings: i64,
    pub gateway: GatewayActivity,
    pub risk: &'static str,
    pub risk_signals: Vec<&'static str>,
    #[serde(skip)]
    first_ms: Option<i64>,
    #[serde(skip)]
    last_ms: Option<i64>,
    #[serde(skip)]
    flags: (i64, i64, i64),
}

struct AuditAgent {
    first: Option<i64>,
    last: Option<i64>,
    activity: GatewayActivity,
}

fn opt(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn scope_of(scope: Option<&str>) -> &str {
    scope.unwrap_or("*")
}

async fn audit_agents(
    db: &Db,
    scope: Option<&str>,
) -> Result<BTreeMap<(String, String), AuditAgent>> {
    let rows = sqlx::query(
        "SELECT tenant, agent_id, MIN(ts) AS first_ts, MAX(ts) AS last_ts, \
         SUM(CASE WHEN decision = 'allow' THEN 1 ELSE 0 END) AS allow_n, \
         SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) AS deny_n, \
         SUM(CASE WHEN decision = 'escalate' THEN 1 ELSE 0 END) AS escalate_n, \
         COUNT(*) AS total_n FROM audit_events \
         WHERE ($1 = '*' OR tenant = $1) AND agent_id <> '' \
         AND event IN ('intentgate.tool_call', 'intentgate.request') \
         GROUP BY tenant, agent_id",
    )
    .bind(scope_of(scope))
    .fetch_all(db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let first: Option<String> = row.try_get("first_ts")?;
        let last: Option<String> = row.try_get("last_ts")?;
        out.insert(
            (row.try_get("tenant")?, row.try_get("agent_id")?),
            AuditAgent {
                first: first.as_deref().and_then(time::parse_audit_ts),
                last: last.as_deref().and_then(time::parse_audit_ts),
                activity: GatewayActivity {
                    allow: row.try_get("allow_n")?,
                    deny: row.try_get("deny_n")?,
                    escalate: row.try_get("escalate_n")?,
                    total: row.try_get("total_n")?,
                },
            },
        );
    }
    Ok(out)
}

fn blank(tenant: &str, agent: &str) -> Agent {
    Agent {
        tenant: tenant.to_owned(),
        agent: agent.to_owned(),
        kind: "gateway_agent".into(),
        governed: false,
        discovered: false,
        gateway_agent_id: None,
        owner: None,
        attested: false,
        attestation: None,
        first_seen: None,
        last_seen: None,
        user: None,
        device: None,
        client_ip: None,
        services: Vec::new(),
        sightings: 0,
        gateway: GatewayActivity::default(),
        risk: "low",
        risk_signals: Vec::new(),
        first_ms: None,
        last_ms: None,
        flags: (0, 0, 0),
    }
}

fn widen(range: &mut (Option<i64>, Option<i64>), first: Option<i64>, last: Option<i64>) {
    range.0 = match (range.0, first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    range.1 = match (range.1, last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

/// The cursor list name of the inventory.
pub const LIST: &str = "discovery_agents";

/// A page of the inventory, `governed` or not (`None`: both). The inventory is computed, not a
/// table, so its cursor is an offset into the sorted list (authenticated like every cursor).
pub async fn list(
    db: &Db,
    scope: Option<&str>,
    governed: Option<bool>,
    page: Page,
) -> Result<Paged<Agent>> {
    let agents = load(db, scope)
        .await?
        .into_iter()
        .filter(|a| governed.is_none_or(|g| a.governed == g))
        .collect();
    page.slice(agents)
}

/// The whole inventory of a tenant (or, `None`, of every tenant), sorted by tenant and agent.
pub async fn load(db: &Db, scope: Option<&str>) -> Result<Vec<Agent>> {
    let scope_text = scope_of(scope);
    let mut audit = audit_agents(db, scope).await?;
    let mut agents: BTreeMap<(String, String), Agent> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT tenant, agent, kind, user_name, device, client_ip, first_seen, last_seen, \
         sightings, blocked, low_trust, threat, gateway_agent_id FROM discovered_agents \
         WHERE ($1 = '*' OR tenant = $1)",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        let tenant: String = row.try_get("tenant")?;
        let name: String = row.try_get("agent")?;
        let mut agent = blank(&tenant, &name);
        agent.discovered = true;
        agent.kind = row.try_get("kind")?;
        agent.user = opt(row.try_get("user_name")?);
        agent.device = opt(row.try_get("device")?);
        agent.client_ip = opt(row.try_get("client_ip")?);
        agent.sightings = row.try_get("sightings")?;
        agent.flags = (
            row.try_get("blocked")?,
            row.try_get("low_trust")?,
            row.try_get("threat")?,
        );
        agent.gateway_agent_id = row.try_get("gateway_agent_id")?;
        let mut range = (
            Some(row.try_get("first_seen")?),
            Some(row.try_get("last_seen")?),
        );
        // The gateway's record of this agent, under its own name and under its linked identity.
        for gateway_name in [Some(name.clone()), agent.gateway_agent_id.clone()]
            .into_iter()
            .flatten()
        {
            if let Some(seen) = audit.remove(&(tenant.clone(), gateway_name)) {
                agent.governed = true;
                widen(&mut range, seen.first, seen.last);
                agent.gateway.allow += seen.activity.allow;
                agent.gateway.deny += seen.activity.deny;
                agent.gateway.escalate += seen.activity.escalate;
                agent.gateway.total += seen.activity.total;
            }
        }
        (agent.first_ms, agent.last_ms) = range;
        agents.insert((tenant, name), agent);
    }
    for ((tenant, name), seen) in audit {
        let mut agent = blank(&tenant, &name);
        agent.governed = true;
        agent.first_ms = seen.first;
        agent.last_ms = seen.last;
        agent.gateway = seen.activity;
        agents.insert((tenant, name), agent);
    }
    let services = sqlx::query(
        "SELECT tenant, agent, service, name, kind FROM discovered_services \
         WHERE ($1 = '*' OR tenant = $1) ORDER BY service",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?;
    for row in services {
        let key: (String, String) = (row.try_get("tenant")?, row.try_get("agent")?);
        if let Some(agent) = agents.get_mut(&key) {
            agent.services.push(Touch {
                service: row.try_get("service")?,
                name: row.try_get("name")?,
                kind: row.try_get("kind")?,
            });
        }
    }
    let owners = sqlx::query(
        "SELECT tenant, agent, owner FROM agent_owners WHERE ($1 = '*' OR tenant = $1)",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?;
    for row in owners {
        let key: (String, String) = (row.try_get("tenant")?, row.try_get("agent")?);
        if let Some(agent) = agents.get_mut(&key) {
            agent.owner = Some(row.try_get("owner")?);
        }
    }
    let answers = sqlx::query(
        "SELECT tenant, agent, campaign_id, decision, attested_at FROM attestation_items \
         WHERE ($1 = '*' OR tenant = $1) AND decision IS NOT NULL ORDER BY attested_at",
    )
    .bind(scope_text)
    .fetch_all(db.pool())
    .await?;
    for row in answers {
        let key: (String, String) = (row.try_get("tenant")?, row.try_get("agent")?);
        if let Some(agent) = agents.get_mut(&key) {
            let decision: String = row.try_get("decision")?;
            agent.attested = decision == "certify";
            agent.attestation = Some(Attestation {
                campaign_id: row.try_get("campaign_id")?,
                decision,
                attested_at: time::rfc3339(
                    row.try_get::<Option<i64>, _>("attested_at")?
                        .unwrap_or_default(),
                ),
            });
        }
    }
    let now = time::now_ms();
    Ok(agents
        .into_values()
        .map(|mut agent| {
            agent.first_seen = agent.first_ms.map(time::rfc3339);
            agent.last_seen = agent.last_ms.map(time::rfc3339);
            assess(&mut agent, now);
            agent
        })
        .collect())
}

/// The risk signals of an agent and the level they add up to.
fn assess(agent: &mut Agent, now: i64) {
    let (blocked, low_trust, threat) = agent.flags;
    let mut signals = Vec::new();
    if !agent.governed {
        signals.push("ungoverned");
    }
    if agent.owner.is_none() {
        signals.push("unowned");
    }
    if !agent.attested {
        signals.push("unattested");
    }
    if agent.kind == "mcp_client" && !agent.governed {
        signals.push("direct_mcp");
    }
    if blocked > 0 {
        signals.push("blocked_by_source");
    }
    if low_trust > 0 {
        signals.push("low_trust_service");
    }
    if threat > 0 {
        signals.push("threat_detected");
    }
    if agent.gateway.deny > 0 && agent.gateway.deny.saturating_mul(4) >= agent.gateway.total {
        signals.push("policy_denials");
    }
    if agent.last_ms.is_some_and(|last| now - last > DORMANT_MS) {
        signals.push("dormant");
    }
    let has = |s: &str| signals.contains(&s);
    agent.risk =
        if has("threat_detected") || has("direct_mcp") || (has("ungoverned") && has("unowned")) {
            "high"
        } else if has("ungoverned")
            || has("low_trust_service")
            || has("policy_denials")
            || has("blocked_by_source")
        {
            "medium"
        } else {
            "low"
        };
    agent.risk_signals = signals;
}

/// One agent of the inventory; another tenant's, or an unknown one, is absent.
pub async fn get(db: &Db, tenant: &str, name: &str) -> Result<Agent> {
    load(db, Some(tenant))
        .await?
        .into_iter()
        .find(|a| a.agent == name)
        .ok_or_else(|| Error::not_found(format!("no agent {name:?} in the inventory")))
}

/// A change to an agent: its owner (`""` clears it) and, for a discovered agent, the gateway
/// identity it runs under (`""` clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub owner: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub gateway_agent_id: Option<String>,
}

pub async fn update(
    recorder: &Recorder,
    admin: &Admin,
    name: &str,
    change: AgentUpdate,
) -> Result<Agent> {
    let db = recorder.db();
    let tenant = admin.tenant_for_change(change.tenant.as_deref())?;
    if let Some(owner) = &change.owner {
        validate::optional_text("owner", owner, MAX_OWNER).map_err(Error::BadRequest)?;
    }
    if let Some(link) = &change.gateway_agent_id {
        validate::optional_text("gateway_agent_id", link, MAX_OWNER).map_err(Error::BadRequest)?;
    }
    let current = get(db, &tenant, name).await?;
    if change.gateway_agent_id.is_some() && !current.discovered {
        return Err(Error::bad_request(
            "gateway_agent_id links a discovered agent; this agent is only known to the gateway",
        ));
    }
    if change.owner.is_none() && change.gateway_agent_id.is_none() {
        // Nothing to change, so nothing to audit.
        return Ok(current);
    }
    let actor = admin.actor();
    let mut what = Vec::new();
    let mut tx = recorder.begin().await?;
    if let Some(owner) = &change.owner {
        let owner = owner.trim();
        if owner.is_empty() {
            sqlx::query("DELETE FROM agent_owners WHERE tenant = $1 AND agent = $2")
                .bind(&tenant)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            what.push("cleared the owner".to_owned());
        } else {
            sqlx::query(
                "INSERT INTO agent_owners (tenant, agent, owner, assigned_by, assigned_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, agent) DO UPDATE SET \
                 owner = excluded.owner, assigned_by = excluded.assigned_by, \
                 assigned_at = excluded.assigned_at",
            )
            .bind(&tenant)
            .bind(name)
            .bind(owner)
            .bind(&actor)
            .bind(time::now_ms())
            .execute(&mut *tx)
            .await?;
            what.push(format!("owner {owner}"));
        }
    }
    if let Some(link) = &change.gateway_agent_id {
        let link = link.trim();
        sqlx::query(
            "UPDATE discovered_agents SET gateway_agent_id = $3 WHERE tenant = $1 AND agent = $2",
        )
        .bind(&tenant)
        .bind(name)
        .bind((!link.is_empty()).then_some(link))
        .execute(&mut *tx)
        .await?;
        what.push(format!("gateway agent {link:?}"));
    }
    let event = audit::record::admin(
        &tenant,
        "discovery_agent_update",
        &actor,
        format!("agent {name:?}: {}", what.join(", ")),
    )?;
    tx.commit(event).await?;
    get(db, &tenant, name).await
}
