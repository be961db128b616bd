//! Turning a batch of vendor records into inventory: parse each record with its source's parser,
//! keep the AI traffic, merge it per agent, and upsert the agents and the services they touch in
//! one transaction. Malformed records are counted and reported, never fatal.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::catalog::{self, Catalog};
use super::parse::Vendor;
use crate::error::Result;
use crate::store::Db;
use crate::time;

/// Most records one push may carry.
pub const MAX_RECORDS: usize = 10_000;
/// Per-record errors reported back; the rest are only counted.
const MAX_ERRORS: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordError {
    pub index: usize,
    pub error: String,
}

/// What an ingest or a poll did with a batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Imported {
    pub ok: bool,
    /// The source's id.
    pub source: String,
    pub received: i64,
    /// Distinct agents found in the batch.
    pub discovered: i64,
    /// Records of AI traffic merged into the inventory.
    pub imported: i64,
    /// Well-formed records that are not AI traffic.
    pub skipped: i64,
    pub malformed: i64,
    /// The first malformed records, by index in the batch, and why.
    pub errors: Vec<RecordError>,
}

#[derive(Debug, Default)]
struct ServiceAgg {
    name: String,
    kind: &'static str,
    first: i64,
    last: i64,
    count: i64,
}

#[derive(Debug, Default)]
struct AgentAgg {
    kind: &'static str,
    user: String,
    device: String,
    client_ip: String,
    user_agent: String,
    first: i64,
    last: i64,
    count: i64,
    blocked: i64,
    low_trust: i64,
    threat: i64,
    services: BTreeMap<String, ServiceAgg>,
}

fn kind_rank(kind: &str) -> u8 {
    match kind {
        "mcp_client" => 2,
        "agent" => 1,
        _ => 0,
    }
}

fn keep(target: &mut String, value: Option<&String>) {
    if let Some(v) = value {
        target.clone_from(v);
    }
}

/// Parses and merges a batch; writes nothing.
fn merge(
    vendor: Vendor,
    catalog: &Catalog,
    records: &[Value],
    now: i64,
) -> (BTreeMap<String, AgentAgg>, Imported) {
    let mut agents: BTreeMap<String, AgentAgg> = BTreeMap::new();
    let mut report = Imported {
        ok: true,
        source: String::new(),
        received: i64::try_from(records.len()).unwrap_or(i64::MAX),
        discovered: 0,
        imported: 0,
        skipped: 0,
        malformed: 0,
        errors: Vec::new(),
    };
    for (index, record) in records.iter().enumerate() {
        let observation = match vendor.parse(record) {
            Ok(o) => o,
            Err(error) => {
                report.malformed += 1;
                if report.errors.len() < MAX_ERRORS {
                    report.errors.push(RecordError { index, error });
                }
                continue;
            }
        };
        let Some(service) = catalog.classify(&observation) else {
            report.skipped += 1;
            continue;
        };
        report.imported += 1;
        // A log cannot be from the future; a skewed clock must not push last_seen ahead.
        let at = observation.time_ms.unwrap_or(now).min(now);
        let kind = catalog::agent_kind(&service, observation.user_agent.as_deref());
        let agent = agents
            .entry(catalog::agent_name(&observation, &service))
            .or_insert_with(|| AgentAgg {
                first: at,
                last: at,
                ..AgentAgg::default()
            });
        if kind_rank(kind) >= kind_rank(agent.kind) {
            agent.kind = kind;
        }
        if at >= agent.last {
            keep(&mut agent.user, observation.user.as_ref());
            keep(&mut agent.device, observation.device.as_ref());
            keep(&mut agent.client_ip, observation.client_ip.as_ref());
            keep(&mut agent.user_agent, observation.user_agent.as_ref());
        }
        agent.first = agent.first.min(at);
        agent.last = agent.last.max(at);
        agent.count += 1;
        agent.blocked += i64::from(observation.blocked);
        agent.low_trust += i64::from(observation.low_trust);
        agent.threat += i64::from(observation.threat);
        let touched = agent
            .services
            .entry(service.id.clone())
            .or_insert_with(|| ServiceAgg {
                name: service.name.clone(),
                kind: service.kind.as_str(),
                first: at,
                last: at,
                count: 0,
            });
        touched.first = touched.first.min(at);
        touched.last = touched.last.max(at);
        touched.count += 1;
    }
    report.discovered = i64::try_from(agents.len()).unwrap_or(i64::MAX);
    (agents, report)
}

/// Imports a batch into `tenant`'s inventory on behalf of source `source_id`.
pub async fn import(
    db: &Db,
    catalog: &Catalog,
    tenant: &str,
    source_id: &str,
    vendor: Vendor,
    records: &[Value],
) -> Result<Imported> {
    let now = time::now_ms();
    let (agents, mut report) = merge(vendor, catalog, records, now);
    report.source = source_id.to_owned();
    if agents.is_empty() {
        return Ok(report);
    }
    let mut tx = db.begin().await?;
    for (name, agent) in &agents {
        sqlx::query(
            "INSERT INTO discovered_agents (tenant, agent, kind, user_name, device, client_ip, \
             user_agent, first_seen, last_seen, sightings, blocked, low_trust, threat, \
             last_source_id, last_vendor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (tenant, agent) DO UPDATE SET \
             kind = CASE WHEN discovered_agents.kind = 'mcp_client' \
                 OR (discovered_agents.kind = 'agent' AND excluded.kind = 'ai_app_user') \
                 THEN discovered_agents.kind ELSE excluded.kind END, \
             user_name = CASE WHEN excluded.user_name <> '' AND excluded.last_seen >= discovered_agents.last_seen \
                 THEN excluded.user_name ELSE discovered_agents.user_name END, \
             device = CASE WHEN excluded.device <> '' AND excluded.last_seen >= discovered_agents.last_seen \
                 THEN excluded.device ELSE discovered_agents.device END, \
             client_ip = CASE WHEN excluded.client_ip <> '' AND excluded.last_seen >= discovered_agents.last_seen \
                 THEN excluded.client_ip ELSE discovered_agents.client_ip END, \
             user_agent = CASE WHEN excluded.user_agent <> '' AND excluded.last_seen >= discovered_agents.last_seen \
                 THEN excluded.user_agent ELSE discovered_agents.user_agent END, \
             first_seen = CASE WHEN excluded.first_seen < discovered_agents.first_seen \
                 THEN excluded.first_seen ELSE discovered_agents.first_seen END, \
             last_seen = CASE WHEN excluded.last_seen > discovered_agents.last_seen \
                 THEN excluded.last_seen ELSE discovered_agents.last_seen END, \
             sightings = discovered_agents.sightings + excluded.sightings, \
             blocked = discovered_agents.blocked + excluded.blocked, \
             low_trust = discovered_agents.low_trust + excluded.low_trust, \
             threat = discovered_agents.threat + excluded.threat, \
             last_source_id = excluded.last_source_id, last_vendor = excluded.last_vendor",
        )
        .bind(tenant)
        .bind(name)
        .bind(agent.kind)
        .bind(&agent.user)
        .bind(&agent.device)
        .bind(&agent.client_ip)
        .bind(&agent.user_agent)
        .bind(agent.first)
        .bind(agent.last)
        .bind(agent.count)
        .bind(agent.blocked)
        .bind(agent.low_trust)
        .bind(agent.threat)
        .bind(source_id)
        .bind(vendor.as_str())
        .execute(&mut *tx)
        .await?;
        for (service, touched) in &agent.services {
            sqlx::query(
                "INSERT INTO discovered_services (tenant, agent, service, name, kind, first_seen, \
                 last_seen, sightings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant, agent, service) DO UPDATE SET \
                 first_seen = CASE WHEN excluded.first_seen < discovered_services.first_seen \
                     THEN excluded.first_seen ELSE discovered_services.first_seen END, \
                 last_seen = CASE WHEN excluded.last_seen > discovered_services.last_seen \
                     THEN excluded.last_seen ELSE discovered_services.last_seen END, \
                 sightings = discovered_services.sightings + excluded.sightings",
            )
            .bind(tenant)
            .bind(name)
            .bind(service)
            .bind(&touched.name)
            .bind(touched.kind)
            .bind(touched.first)
            .bind(touched.last)
            .bind(touched.count)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// The records of an ingest body: `{"records": [...]}` or a bare array.
pub fn body_records(body: Value) -> std::result::Result<Vec<Value>, String> {
    let records = match body {
        Value::Array(records) => records,
        Value::Object(mut object) => match object.remove("records") {
            Some(Value::Array(records)) if object.is_empty() => records,
            Some(Value::Array(_)) => {
                return Err("the body takes only `records`".into());
            }
            Some(_) => return Err("field `records` must be an array".into()),
            None => return Err("the body must be {\"records\": [...]} or an array".into()),
        },
        _ => return Err("the body must be {\"records\": [...]} or an array".into()),
    };
    if records.len() > MAX_RECORDS {
        return Err(format!("a batch holds at most {MAX_RECORDS} records"));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_merge_per_agent_and_count_what_they_skip() {
        let records = vec![
            json!({"device": "build-7", "url": "https://api.openai.com/v1/responses", "timestamp": 1_700_000_001_000_i64}),
            json!({"device": "build-7", "host": "api.anthropic.com", "timestamp": 1_700_000_003_000_i64,
                   "user_agent": "anthropic-python/0.30", "action": "blocked"}),
            json!({"device": "build-7", "host": "mail.example.com"}),
            json!({"user": "no destination"}),
            json!("not an object"),
        ];
        let (agents, report) = merge(
            Vendor::Generic,
            &Catalog::default(),
            &records,
            1_800_000_000_000,
        );
        assert_eq!(
            (
                report.received,
                report.discovered,
                report.imported,
                report.skipped,
                report.malformed
            ),
            (5, 1, 2, 1, 2)
        );
        assert_eq!(
            report.errors.iter().map(|e| e.index).collect::<Vec<_>>(),
            [3, 4]
        );
        let agent = &agents["build-7"];
        assert_eq!(
            (agent.first, agent.last, agent.blocked),
            (1_700_000_001_000, 1_700_000_003_000, 1)
        );
        assert_eq!(
            agent.services.keys().collect::<Vec<_>>(),
            ["anthropic-api", "openai-api"]
        );
        assert_eq!(agent.kind, "agent");
    }

    #[test]
    fn bodies_are_a_records_object_or_an_array() {
        assert_eq!(body_records(json!([1, 2])).unwrap().len(), 2);
        assert_eq!(body_records(json!({"records": [1]})).unwrap().len(), 1);
        assert!(body_records(json!({"records": 1})).is_err());
        assert!(body_records(json!({"items": []})).is_err());
        assert!(body_records(json!({"records": [], "x": 1})).is_err());
        assert!(body_records(json!("x")).is_err());
    }
}
