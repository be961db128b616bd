//! Attestation campaigns: a snapshot of a tenant's inventory that owners answer agent by agent,
//! certifying that the agent and its access are still needed (`certify`) or that it must go
//! (`revoke`), each with evidence. An agent is attested while its latest answer is `certify`.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::inventory;
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{audit, ids, time, validate};

pub const LIST: &str = "attestation_campaigns";
const MAX_NAME: usize = 200;
const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    All,
    Governed,
    Ungoverned,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub due_at: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub scope: Option<Scope>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Certify,
    Revoke,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub agent: String,
    pub decision: Decision,
    pub evidence: String,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub attested_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub agent: String,
    pub owner: Option<String>,
    pub decision: Option<String>,
    pub evidence: Option<String>,
    pub attested_by: Option<String>,
    pub attested_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: String,
    pub due_at: Option<String>,
    /// `open`, `overdue` (past due with answers missing) or `complete`.
    pub status: &'static str,
    pub total: i64,
    pub answered: i64,
    pub certified: i64,
    pub revoked: i64,
    /// Answered items as a percentage of all items, rounded down.
    pub completion_pct: i64,
    /// Present on a single campaign, left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
}

const COLUMNS: &str = "c.pos, c.id, c.tenant, c.name, c.description, c.created_by, c.created_at, c.due_at, \
     (SELECT COUNT(*) FROM attestation_items i WHERE i.campaign_id = c.id) AS total, \
     (SELECT COUNT(*) FROM attestation_items i WHERE i.campaign_id = c.id AND i.decision = 'certify') AS certified, \
     (SELECT COUNT(*) FROM attestation_items i WHERE i.campaign_id = c.id AND i.decision = 'revoke') AS revoked";

impl Campaign {
    fn from_row(row: &AnyRow, now: i64) -> Result<Self> {
        let total: i64 = row.try_get("total")?;
        let certified: i64 = row.try_get("certified")?;
        let revoked: i64 = row.try_get("revoked")?;
        let answered = certified + revoked;
        let due: Option<i64> = row.try_get("due_at")?;
        let status = if answered >= total {
            "complete"
        } else if due.is_some_and(|d| d < now) {
            "overdue"
        } else {
            "open"
        };
        Ok(Campaign {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            due_at: due.map(time::rfc3339),
            status,
            total,
            answered,
            certified,
            revoked,
            completion_pct: if total == 0 {
                100
            } else {
                answered * 100 / total
            },
            items: None,
        })
    }
}

pub async fn create(recorder: &Recorder, admin: &Admin, new: NewCampaign) -> Result<Campaign> {
    let db = recorder.db();
    validate::required_text("name", &new.name, MAX_NAME).map_err(Error::BadRequest)?;
    if let Some(description) = &new.description {
        validate::optional_text("description", description, MAX_TEXT).map_err(Error::BadRequest)?;
    }
    let created_by = admin.labelled("created_by", new.created_by)?;
    let due_at = new
        .due_at
        .as_deref()
        .map(|t| time::parse_param("due_at", t))
        .transpose()?;
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let scope = new.scope.unwrap_or(Scope::All);
    let agents: Vec<_> = inventory::load(db, Some(&tenant))
        .await?
        .into_iter()
        .filter(|a| match scope {
            Scope::All => true,
            Scope::Governed => a.governed,
            Scope::Ungoverned => !a.governed,
        })
        .collect();
    if agents.is_empty() {
        return Err(Error::Conflict(format!(
            "tenant {tenant} has no agents in the inventory to attest"
        )));
    }
    let id = ids::new_id()?;
    let event = audit::record::admin(
        &tenant,
        "attestation_campaign_create",
        &created_by.audited,
        format!(
            "created attestation campaign {id} ({}) over {} agents",
            new.name,
            agents.len()
        ),
    )?;
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO attestation_campaigns (id, tenant, name, description, created_by, created_at, \
         due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(new.description.unwrap_or_default())
    .bind(&created_by.label)
    .bind(time::now_ms())
    .bind(due_at)
    .execute(&mut *tx)
    .await?;
    for agent in &agents {
        sqlx::query(
            "INSERT INTO attestation_items (campaign_id, tenant, agent, owner) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&tenant)
        .bind(&agent.agent)
        .bind(agent.owner.clone().unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit(event).await?;
    get(db, admin, &id).await
}

pub async fn list(db: &Db, scope: Option<&str>, page: Page) -> Result<Paged<Campaign>> {
    let scope = scope.unwrap_or("*");
    let sql = format!(
        "SELECT {COLUMNS} FROM attestation_campaigns c WHERE ($1 = '*' OR c.tenant = $1) \
         AND c.pos < $2 ORDER BY c.pos DESC LIMIT $3"
    );
    let now = time::now_ms();
    let query = sqlx::query(&sql).bind(scope);
    page.run(db, query, |row| {
        Ok((row.try_get("pos")?, Campaign::from_row(row, now)?))
    })
    .await
}

/// Every campaign of a tenant (or of all), oldest first, with its items: the attestation report.
pub async fn all(db: &Db, scope: Option<&str>) -> Result<Vec<Campaign>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM attestation_campaigns c WHERE ($1 = '*' OR c.tenant = $1) ORDER BY c.pos"
    ))
    .bind(scope.unwrap_or("*"))
    .fetch_all(db.pool())
    .await?;
    let now = time::now_ms();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut campaign = Campaign::from_row(&row, now)?;
        campaign.items = Some(items(db, &campaign.id).await?);
        out.push(campaign);
    }
    Ok(out)
}

async fn items(db: &Db, id: &str) -> Result<Vec<Item>> {
    let rows = sqlx::query(
        "SELECT agent, owner, decision, evidence, attested_by, attested_at FROM attestation_items \
         WHERE campaign_id = $1 ORDER BY agent",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let owner: String = row.try_get("owner")?;
            Ok(Item {
                agent: row.try_get("agent")?,
                owner: (!owner.is_empty()).then_some(owner),
                decision: row.try_get("decision")?,
                evidence: row.try_get("evidence")?,
                attested_by: row.try_get("attested_by")?,
                attested_at: row
                    .try_get::<Option<i64>, _>("attested_at")?
                    .map(time::rfc3339),
            })
        })
        .collect()
}

/// A campaign the admin may see, with its items; another tenant's is absent.
pub async fn get(db: &Db, admin: &Admin, id: &str) -> Result<Campaign> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM attestation_campaigns c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let campaign = row
        .map(|r| Campaign::from_row(&r, time::now_ms()))
        .transpose()?;
    match campaign {
        Some(mut campaign) if admin.may_access(&campaign.tenant) => {
            campaign.items = Some(items(db, id).await?);
            Ok(campaign)
        }
        _ => Err(Error::not_found(format!("no attestation campaign {id}"))),
    }
}

/// Records an owner's answer for one agent of a campaign, once.
pub async fn respond(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    response: Response,
) -> Result<Campaign> {
    let db = recorder.db();
    validate::required_text("evidence", &response.evidence, MAX_TEXT).map_err(Error::BadRequest)?;
    let attested_by = admin.labelled("attested_by", response.attested_by)?;
    let campaign = get(db, admin, id).await?;
    let item = campaign
        .items
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|i| i.agent == response.agent)
        .cloned()
        .ok_or_else(|| {
            Error::not_found(format!(
                "agent {:?} is not in campaign {id}",
                response.agent
            ))
        })?;
    let decision = match response.decision {
        Decision::Certify => "certify",
        Decision::Revoke => "revoke",
    };
    let already = || {
        Error::Conflict(format!(
            "agent {:?} was already attested in campaign {id}",
            item.agent
        ))
    };
    if item.decision.is_some() {
        return Err(already());
    }
    let event = audit::record::admin(
        &campaign.tenant,
        "attestation_response",
        &attested_by.audited,
        format!(
            "campaign {id}: {decision} agent {:?}: {}",
            item.agent, response.evidence
        ),
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE attestation_items SET decision = $3, evidence = $4, attested_by = $5, \
         attested_at = $6 WHERE campaign_id = $1 AND agent = $2 AND decision IS NULL",
    )
    .bind(id)
    .bind(&item.agent)
    .bind(decision)
    .bind(&response.evidence)
    .bind(&attested_by.label)
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(already());
    }
    tx.commit(event).await?;
    get(db, admin, id).await
}
