//! The pull scheduler behind `POST /api/discovery/sync`: every enabled pull source whose interval
//! has elapsed is claimed (so overlapping syncs and replicas never poll one source twice), its
//! endpoint fetched with its credentials, the export normalised and imported.

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use sqlx::Row;

use super::catalog::Catalog;
use super::import::{self, Imported};
use super::parse::{self, Vendor};
use super::{reach, sources};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::time;

/// Largest export read from one endpoint.
pub const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Sources polled at once.
const CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Polled {
    pub source: String,
    pub tenant: String,
    pub vendor: Vendor,
    pub ok: bool,
    pub error: Option<String>,
    pub received: i64,
    pub discovered: i64,
    pub imported: i64,
    pub skipped: i64,
    pub malformed: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Every polled source answered and was imported.
    pub ok: bool,
    pub polled: usize,
    pub imported: i64,
    pub results: Vec<Polled>,
}

/// The HTTP clients for exports (see [`reach::Clients`]).
pub fn clients() -> Result<reach::Clients> {
    reach::Clients::new(
        concat!("intentgate-discovery/", env!("CARGO_PKG_VERSION")),
        CONNECT_TIMEOUT,
        FETCH_TIMEOUT,
    )
}

pub async fn sync(
    db: &Db,
    clients: &reach::Clients,
    catalog: &Catalog,
    master_seed: &[u8; 32],
) -> Result<SyncReport> {
    let now = time::now_ms();
    let due = sqlx::query(
        "SELECT id, interval_seconds, next_poll_at FROM discovery_sources \
         WHERE mode = 'pull' AND enabled = 1 AND next_poll_at <= $1 ORDER BY next_poll_at",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let mut claimed = Vec::new();
    for row in due {
        let id: String = row.try_get("id")?;
        let interval: i64 = row
            .try_get::<Option<i64>, _>("interval_seconds")?
            .unwrap_or(sources::DEFAULT_INTERVAL);
        let was: i64 = row.try_get("next_poll_at")?;
        // Only the sync that moves next_poll_at from the value it read polls the source.
        let won = sqlx::query(
            "UPDATE discovery_sources SET next_poll_at = $3 WHERE id = $1 AND next_poll_at = $2",
        )
        .bind(&id)
        .bind(was)
        .bind(now.saturating_add(interval.saturating_mul(1000)))
        .execute(db.pool())
        .await?
        .rows_affected()
            == 1;
        if won {
            claimed.push(id);
        }
    }
    let results: Vec<Result<Polled>> = futures::stream::iter(claimed)
        .map(|id| poll(db, clients, catalog, master_seed, id))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let results = results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(SyncReport {
        ok: results.iter().all(|r| r.ok),
        polled: results.len(),
        imported: results.iter().map(|r| r.imported).sum(),
        results,
    })
}

async fn poll(
    db: &Db,
    clients: &reach::Clients,
    catalog: &Catalog,
    master_seed: &[u8; 32],
    id: String,
) -> Result<Polled> {
    let row = sqlx::query(
        "SELECT tenant, vendor, endpoint, credentials, private_reach FROM discovery_sources \
         WHERE id = $1",
    )
    .bind(&id)
    .fetch_one(db.pool())
    .await?;
    let tenant: String = row.try_get("tenant")?;
    let vendor_name: String = row.try_get("vendor")?;
    let vendor = Vendor::parse_name(&vendor_name)
        .ok_or_else(|| Error::Internal(format!("stored vendor {vendor_name:?}")))?;
    let endpoint: Option<String> = row.try_get("endpoint")?;
    let sealed: Option<String> = row.try_get("credentials")?;
    let private_reach = row.try_get::<i64, _>("private_reach")? != 0;
    let fetched = match endpoint {
        Some(endpoint) => match clients.for_url(&endpoint, private_reach) {
            Ok(client) => {
                fetch(
                    client,
                    master_seed,
                    &id,
                    vendor,
                    &endpoint,
                    sealed.as_deref(),
                )
                .await
            }
            Err(refused) => Err(refused),
        },
        None => Err("the source has no endpoint".to_owned()),
    };
    let outcome = match fetched {
        Ok(records) => import::import(db, catalog, &tenant, &id, vendor, &records)
            .await
            .map_err(|e| {
                tracing::error!(source = %id, error = %e, "discovery import failed");
                "import failed".to_owned()
            }),
        Err(e) => Err(e),
    };
    let polled = match outcome {
        Ok(report) => {
            sources::record_activity(db, &id, report.received, report.imported, Some(Ok(())))
                .await?;
            from_report(id, tenant, vendor, report)
        }
        Err(error) => {
            tracing::warn!(source = %id, %error, "discovery poll failed");
            sources::record_activity(db, &id, 0, 0, Some(Err(error.clone()))).await?;
            Polled {
                source: id,
                tenant,
                vendor,
                ok: false,
                error: Some(error),
                received: 0,
                discovered: 0,
                imported: 0,
                skipped: 0,
                malformed: 0,
            }
        }
    };
    Ok(polled)
}

fn from_report(source: String, tenant: String, vendor: Vendor, report: Imported) -> Polled {
    Polled {
        source,
        tenant,
        vendor,
        ok: true,
        error: None,
        received: report.received,
        discovered: report.discovered,
        imported: report.imported,
        skipped: report.skipped,
        malformed: report.malformed,
    }
}

/// GETs the export. Errors are short and say nothing of the response body: a tenant admin
/// reads them, and the endpoint may be anything.
async fn fetch(
    client: &reqwest::Client,
    master_seed: &[u8; 32],
    id: &str,
    vendor: Vendor,
    endpoint: &str,
    sealed: Option<&str>,
) -> std::result::Result<Vec<serde_json::Value>, String> {
    let mut request = client.get(endpoint).header("Accept", "application/json");
    if let Some(sealed) = sealed {
        let credentials =
            super::credentials::open(master_seed, id, sealed).map_err(|e| e.to_string())?;
        let (name, value) = credentials.header(vendor);
        request = request.header(name, value);
    }
    let body = reach::fetch_bounded(request, MAX_EXPORT_BYTES).await?;
    let records = parse::export_records(&body)?;
    if records.len() > import::MAX_RECORDS * 10 {
        return Err(format!(
            "the export holds more than {} records",
            import::MAX_RECORDS * 10
        ));
    }
    Ok(records)
}
