//! Attestation: every campaign with its completion and, per agent, the answer and its evidence.
//! The flat form has one row per campaign item.

use super::{Report, Table};
use crate::discovery::attestation;
use crate::error::Result;
use crate::store::Db;

const COLUMNS: &[&str] = &[
    "tenant",
    "campaign_id",
    "campaign",
    "status",
    "due_at",
    "completion_pct",
    "agent",
    "owner",
    "decision",
    "evidence",
    "attested_by",
    "attested_at",
];

pub async fn build(db: &Db, scope: Option<&str>) -> Result<Report> {
    let campaigns = attestation::all(db, scope).await?;
    let mut rows = Vec::new();
    for campaign in &campaigns {
        for item in campaign.items.as_deref().unwrap_or_default() {
            rows.push(vec![
                campaign.tenant.clone(),
                campaign.id.clone(),
                campaign.name.clone(),
                campaign.status.to_owned(),
                campaign.due_at.clone().unwrap_or_default(),
                campaign.completion_pct.to_string(),
                item.agent.clone(),
                item.owner.clone().unwrap_or_default(),
                item.decision.clone().unwrap_or_default(),
                item.evidence.clone().unwrap_or_default(),
                item.attested_by.clone().unwrap_or_default(),
                item.attested_at.clone().unwrap_or_default(),
            ]);
        }
    }
    Ok(Report {
        json: serde_json::json!({ "campaigns": campaigns }),
        table: Table {
            columns: COLUMNS,
            rows,
        },
    })
}
