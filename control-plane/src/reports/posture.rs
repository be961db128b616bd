//! Posture: coverage roll-ups per tenant. `agents` is the whole inventory (discovered ∪ seen by the
//! gateway); `governed`, `owned` and `attested` count agents with that property, and the
//! percentages are of `agents`. The last row (tenant `*`) totals every tenant.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{Report, Table, pct};
use crate::discovery::inventory;
use crate::error::Result;
use crate::store::Db;

#[derive(Debug, Clone, Default, Serialize)]
struct Coverage {
    tenant: String,
    agents: i64,
    discovered: i64,
    governed: i64,
    ungoverned: i64,
    owned: i64,
    attested: i64,
    high_risk: i64,
    sources: i64,
    governed_pct: i64,
    owned_pct: i64,
    attested_pct: i64,
}

impl Coverage {
    fn finish(mut self) -> Self {
        self.governed_pct = pct(self.governed, self.agents);
        self.owned_pct = pct(self.owned, self.agents);
        self.attested_pct = pct(self.attested, self.agents);
        self
    }

    fn add(&mut self, other: &Coverage) {
        self.agents += other.agents;
        self.discovered += other.discovered;
        self.governed += other.governed;
        self.ungoverned += other.ungoverned;
        self.owned += other.owned;
        self.attested += other.attested;
        self.high_risk += other.high_risk;
        self.sources += other.sources;
    }

    fn row(&self) -> Vec<String> {
        [
            self.agents,
            self.discovered,
            self.governed,
            self.ungoverned,
            self.owned,
            self.attested,
            self.high_risk,
            self.sources,
            self.governed_pct,
            self.owned_pct,
            self.attested_pct,
        ]
        .iter()
        .map(i64::to_string)
        .fold(vec![self.tenant.clone()], |mut row, cell| {
            row.push(cell);
            row
        })
    }
}

const COLUMNS: &[&str] = &[
    "tenant",
    "agents",
    "discovered",
    "governed",
    "ungoverned",
    "owned",
    "attested",
    "high_risk",
    "sources",
    "governed_pct",
    "owned_pct",
    "attested_pct",
];

pub async fn build(db: &Db, scope: Option<&str>) -> Result<Report> {
    let mut tenants: BTreeMap<String, Coverage> = BTreeMap::new();
    for agent in inventory::load(db, scope).await? {
        let entry = tenants
            .entry(agent.tenant.clone())
            .or_insert_with(|| Coverage {
                tenant: agent.tenant.clone(),
                ..Coverage::default()
            });
        entry.agents += 1;
        entry.discovered += i64::from(agent.discovered);
        entry.governed += i64::from(agent.governed);
        entry.ungoverned += i64::from(!agent.governed);
        entry.owned += i64::from(agent.owner.is_some());
        entry.attested += i64::from(agent.attested);
        entry.high_risk += i64::from(agent.risk == "high");
    }
    let sources = sqlx::query(
        "SELECT tenant, COUNT(*) AS n FROM discovery_sources WHERE ($1 = '*' OR tenant = $1) \
         GROUP BY tenant",
    )
    .bind(scope.unwrap_or("*"))
    .fetch_all(db.pool())
    .await?;
    for row in sources {
        let tenant: String = row.try_get("tenant")?;
        tenants
            .entry(tenant.clone())
            .or_insert_with(|| Coverage {
                tenant,
                ..Coverage::default()
            })
            .sources = row.try_get("n")?;
    }
    let mut totals = Coverage {
        tenant: "*".into(),
        ..Coverage::default()
    };
    let rows: Vec<Coverage> = tenants
        .into_values()
        .map(|c| {
            totals.add(&c);
            c.finish()
        })
        .collect();
    let totals = totals.finish();
    let mut table: Vec<Vec<String>> = rows.iter().map(Coverage::row).collect();
    table.push(totals.row());
    Ok(Report {
        json: serde_json::json!({ "tenants": rows, "totals": totals }),
        table: Table {
            columns: COLUMNS,
            rows: table,
        },
    })
}
