//! Discovery sources: who may push logs (each with its own bearer token) and which exports the
//! control plane pulls. Every change is an audit event in the tenant's chain.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::credentials::{self, Credentials};
use super::parse::Vendor;
use super::{reach, token};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{audit, ids, time, validate};

pub const LIST: &str = "discovery_sources";
const MAX_NAME: usize = 200;
pub const DEFAULT_INTERVAL: i64 = 900;
pub const MIN_INTERVAL: i64 = 60;
pub const MAX_INTERVAL: i64 = 7 * 86_400;
const COLUMNS: &str = "pos, id, tenant, name, vendor, mode, enabled, endpoint, credentials, \
     interval_seconds, token_sha256, created_by, created_at, updated_at, next_poll_at, \
     last_poll_at, last_error, last_ingest_at, records_received, records_discovered, private_reach";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Push,
    Pull,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Pull => "pull",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    pub name: String,
    pub vendor: Vendor,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub mode: Option<Mode>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub credentials: Option<Credentials>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub created_by: Option<String>,
}

/// A partial update: fields left out keep their value. Switching to push drops the endpoint,
/// credentials and interval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceUpdate {
    #[serde(default, deserialize_with = "validate::non_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub vendor: Option<Vendor>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub mode: Option<Mode>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub credentials: Option<Credentials>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub interval_seconds: Option<i64>,
}

/// A source as the API shows it: credentials never, only whether there are some.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub vendor: Vendor,
    pub mode: Mode,
    pub enabled: bool,
    pub endpoint: Option<String>,
    pub interval_seconds: Option<i64>,
    pub has_credentials: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_ingest_at: Option<String>,
    pub last_poll_at: Option<String>,
    pub next_poll_at: Option<String>,
    pub last_error: Option<String>,
    pub records_received: i64,
    pub records_discovered: i64,
    #[serde(skip)]
    pub(crate) sealed_credentials: Option<String>,
    #[serde(skip)]
    pub(crate) token_sha256: Vec<u8>,
    /// `updated_at` as stored: an update lands only while it is unchanged.
    #[serde(skip)]
    pub(crate) updated_ms: i64,
    /// Whether the superadmin set the endpoint, so it may be internal (see [`reach`]).
    #[serde(skip)]
    pub(crate) private_reach: bool,
}

/// A new source, with its token shown this once.
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub source: Source,
    pub token: String,
}

impl Source {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let vendor: String = row.try_get("vendor")?;
        let mode: String = row.try_get("mode")?;
        let when = |column: &str| -> Result<Option<String>> {
            Ok(row.try_get::<Option<i64>, _>(column)?.map(time::rfc3339))
        };
        let sealed: Option<String> = row.try_get("credentials")?;
        Ok(Source {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            name: row.try_get("name")?,
            vendor: Vendor::parse_name(&vendor)
                .ok_or_else(|| Error::Internal(format!("stored vendor {vendor:?}")))?,
            mode: if mode == "pull" {
                Mode::Pull
            } else {
                Mode::Push
            },
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            endpoint: row.try_get("endpoint")?,
            interval_seconds: row.try_get("interval_seconds")?,
            has_credentials: sealed.is_some(),
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            updated_at: time::rfc3339(row.try_get("updated_at")?),
            updated_ms: row.try_get("updated_at")?,
            private_reach: row.try_get::<i64, _>("private_reach")? != 0,
            last_ingest_at: when("last_ingest_at")?,
            last_poll_at: when("last_poll_at")?,
            next_poll_at: when("next_poll_at")?,
            last_error: row.try_get("last_error")?,
            records_received: row.try_get("records_received")?,
            records_discovered: row.try_get("records_discovered")?,
            sealed_credentials: sealed,
            token_sha256: row.try_get("token_sha256")?,
        })
    }

    pub fn credentials(&self, master_seed: &[u8; 32]) -> Result<Option<Credentials>> {
        self.sealed_credentials
            .as_deref()
            .map(|sealed| credentials::open(master_seed, &self.id, sealed))
            .transpose()
    }
}

/// Pull endpoints follow [`reach::check_url`].
pub fn check_endpoint(endpoint: &str) -> Result<()> {
    reach::check_url("endpoint", endpoint).map_err(Error::BadRequest)
}

fn check_interval(seconds: i64) -> Result<()> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&seconds) {
        return Err(Error::bad_request(format!(
            "interval_seconds must be from {MIN_INTERVAL} to {MAX_INTERVAL}"
        )));
    }
    Ok(())
}

/// The pull settings a mode needs: pull requires an endpoint; push takes none of them.
/// A per-tenant admin's pull endpoint must not name a host that is not public on its face; a name
/// is checked again whenever it is resolved (see [`reach`]).
fn check_reach(admin: &Admin, endpoint: Option<&str>) -> Result<()> {
    match (admin, endpoint) {
        (Admin::Tenant(_), Some(endpoint)) if reach::names_private_endpoint(endpoint) => {
            Err(Error::bad_request(
                "endpoint must be a public address (an internal one takes the superadmin token)",
            ))
        }
        _ => Ok(()),
    }
}

fn check_mode(
    mode: Mode,
    endpoint: Option<&str>,
    credentials: Option<&Credentials>,
    interval: Option<i64>,
) -> Result<()> {
    match mode {
        Mode::Pull => {
            let endpoint =
                endpoint.ok_or_else(|| Error::bad_request("endpoint is required for mode pull"))?;
            check_endpoint(endpoint)?;
        }
        Mode::Push => {
            if endpoint.is_some() || credentials.is_some() || interval.is_some() {
                return Err(Error::bad_request(
                    "endpoint, credentials and interval_seconds apply only to mode pull",
                ));
            }
        }
    }
    if let Some(credentials) = credentials {
        credentials.check()?;
    }
    if let Some(seconds) = interval {
        check_interval(seconds)?;
    }
    Ok(())
}

pub async fn create(
    recorder: &Recorder,
    master_seed: &[u8; 32],
    admin: &Admin,
    new: NewSource,
) -> Result<Created> {
    let db = recorder.db();
    validate::required_text("name", &new.name, MAX_NAME).map_err(Error::BadRequest)?;
    let mode = new.mode.unwrap_or(Mode::Push);
    check_mode(
        mode,
        new.endpoint.as_deref(),
        new.credentials.as_ref(),
        new.interval_seconds,
    )?;
    check_reach(admin, new.endpoint.as_deref())?;
    let created_by = admin.labelled("created_by", new.created_by)?;
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let id = ids::new_id()?;
    let minted = token::mint(&id)?;
    let sealed = new
        .credentials
        .as_ref()
        .map(|c| credentials::seal(master_seed, &id, c))
        .transpose()?;
    let interval = (mode == Mode::Pull).then(|| new.interval_seconds.unwrap_or(DEFAULT_INTERVAL));
    let now = time::now_ms();
    let event = audit::record::admin(
        &tenant,
        "discovery_source_create",
        &created_by.audited,
        format!(
            "created discovery source {id} ({}, {} {})",
            new.name,
            new.vendor.as_str(),
            mode.as_str()
        ),
    )?;
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO discovery_sources (id, tenant, name, vendor, mode, enabled, endpoint, \
         credentials, interval_seconds, token_sha256, created_by, created_at, updated_at, \
         next_poll_at, private_reach) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(new.vendor.as_str())
    .bind(mode.as_str())
    .bind(i64::from(new.enabled.unwrap_or(true)))
    .bind(new.endpoint.as_deref())
    .bind(sealed.as_deref())
    .bind(interval)
    .bind(minted.digest.to_vec())
    .bind(&created_by.label)
    .bind(now)
    .bind((mode == Mode::Pull).then_some(now))
    .bind(i64::from(matches!(admin, Admin::Super)))
    .execute(&mut *tx)
    .await?;
    tx.commit(event).await?;
    Ok(Created {
        source: get(db, admin, &id).await?,
        token: minted.token,
    })
}

pub async fn list(db: &Db, scope: Option<&str>, page: Page) -> Result<Paged<Source>> {
    let scope = scope.unwrap_or("*");
    let sql = format!(
        "SELECT {COLUMNS} FROM discovery_sources WHERE ($1 = '*' OR tenant = $1) AND pos < $2 \
         ORDER BY pos DESC LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(scope);
    page.run(db, query, |row| {
        Ok((row.try_get("pos")?, Source::from_row(row)?))
    })
    .await
}

async fn find(db: &Db, id: &str) -> Result<Option<Source>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM discovery_sources WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Source::from_row(&r)).transpose()
}

/// A source the admin may see; another tenant's is reported absent.
pub async fn get(db: &Db, admin: &Admin, id: &str) -> Result<Source> {
    match find(db, id).await? {
        Some(source) if admin.may_access(&source.tenant) => Ok(source),
        _ => Err(gone(id)),
    }
}

pub async fn update(
    recorder: &Recorder,
    master_seed: &[u8; 32],
    admin: &Admin,
    id: &str,
    change: SourceUpdate,
) -> Result<Source> {
    let db = recorder.db();
    let current = get(db, admin, id).await?;
    update_from(recorder, master_seed, admin, current, change).await
}

/// Applies `change` over `current`, the source as it was read; the write lands only while the
/// source is unchanged since (its `updated_at`), as for drafts: 409 if it changed, 404 if deleted.
pub async fn update_from(
    recorder: &Recorder,
    master_seed: &[u8; 32],
    admin: &Admin,
    current: Source,
    change: SourceUpdate,
) -> Result<Source> {
    let db = recorder.db();
    let id = current.id.as_str();
    let name = change.name.unwrap_or(current.name.clone());
    validate::required_text("name", &name, MAX_NAME).map_err(Error::BadRequest)?;
    let mode = change.mode.unwrap_or(current.mode);
    let vendor = change.vendor.unwrap_or(current.vendor);
    let (endpoint, sealed, interval) = match mode {
        Mode::Push => {
            check_mode(
                mode,
                change.endpoint.as_deref(),
                change.credentials.as_ref(),
                change.interval_seconds,
            )?;
            (None, None, None)
        }
        Mode::Pull => {
            let endpoint = change.endpoint.or(current.endpoint.clone());
            let interval = change
                .interval_seconds
                .or(current.interval_seconds)
                .unwrap_or(DEFAULT_INTERVAL);
            check_mode(
                mode,
                endpoint.as_deref(),
                change.credentials.as_ref(),
                Some(interval),
            )?;
            let sealed = match &change.credentials {
                Some(c) => Some(credentials::seal(master_seed, id, c)?),
                None => current.sealed_credentials.clone(),
            };
            (endpoint, sealed, Some(interval))
        }
    };
    // The endpoint's trust is its setter's: a per-tenant admin may keep an internal endpoint the
    // superadmin set, but not set one.
    let private_reach = match admin {
        Admin::Super => true,
        Admin::Tenant(_) if endpoint == current.endpoint => current.private_reach,
        Admin::Tenant(_) => {
            check_reach(admin, endpoint.as_deref())?;
            false
        }
    };
    let enabled = change.enabled.unwrap_or(current.enabled);
    let event = audit::record::admin(
        &current.tenant,
        "discovery_source_update",
        &admin.actor(),
        format!(
            "updated discovery source {id} ({name}, {} {}, enabled {enabled})",
            vendor.as_str(),
            mode.as_str()
        ),
    )?;
    let now = time::now_ms();
    // A source switched to pull, or re-enabled, is due at once; otherwise its interval counts
    // from its last poll.
    let next_poll = (mode == Mode::Pull).then(|| {
        let continuing = current.mode == Mode::Pull && current.enabled;
        match current.last_poll_at.as_deref().filter(|_| continuing) {
            Some(last) => chrono::DateTime::parse_from_rfc3339(last).map_or(now, |t| {
                t.timestamp_millis()
                    .saturating_add(interval.unwrap_or(DEFAULT_INTERVAL).saturating_mul(1000))
            }),
            None => now,
        }
    });
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE discovery_sources SET name = $2, vendor = $3, mode = $4, enabled = $5, \
         endpoint = $6, credentials = $7, interval_seconds = $8, updated_at = $9, \
         next_poll_at = $10, private_reach = $12 WHERE id = $1 AND updated_at = $11",
    )
    .bind(id)
    .bind(&name)
    .bind(vendor.as_str())
    .bind(mode.as_str())
    .bind(i64::from(enabled))
    .bind(endpoint.as_deref())
    .bind(sealed.as_deref())
    .bind(interval)
    .bind(next_version(&current, now))
    .bind(next_poll)
    .bind(current.updated_ms)
    .bind(i64::from(private_reach))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        // Rolled back, nothing audited: deleted meanwhile (404), or changed (409).
        get(db, admin, id).await?;
        return Err(Error::Conflict(format!(
            "discovery source {id} changed while this update was made; read it again and retry"
        )));
    }
    tx.commit(event).await?;
    get(db, admin, id).await
}

/// The `updated_at` a change writes: now, but always past the one it read, so that two changes in
/// one millisecond still tell apart for [`update_from`]'s compare-and-set.
fn next_version(current: &Source, now: i64) -> i64 {
    now.max(current.updated_ms.saturating_add(1))
}

fn gone(id: &str) -> Error {
    Error::not_found(format!("no discovery source {id}"))
}

/// Deleting a source revokes its token; what it discovered stays in the inventory.
pub async fn delete(recorder: &Recorder, admin: &Admin, id: &str) -> Result<()> {
    let db = recorder.db();
    let current = get(db, admin, id).await?;
    let event = audit::record::admin(
        &current.tenant,
        "discovery_source_delete",
        &admin.actor(),
        format!("deleted discovery source {id} ({})", current.name),
    )?;
    recorder
        .delete("discovery_sources", id, event, || gone(id))
        .await
}

/// Replaces a source's token; the old one stops working at once.
pub async fn rotate_token(recorder: &Recorder, admin: &Admin, id: &str) -> Result<String> {
    let db = recorder.db();
    let current = get(db, admin, id).await?;
    let minted = token::mint(id)?;
    let event = audit::record::admin(
        &current.tenant,
        "discovery_source_rotate_token",
        &admin.actor(),
        format!(
            "rotated the token of discovery source {id} ({})",
            current.name
        ),
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE discovery_sources SET token_sha256 = $2, updated_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(minted.digest.to_vec())
    .bind(next_version(&current, time::now_ms()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(gone(id));
    }
    tx.commit(event).await?;
    Ok(minted.token)
}

/// The enabled source a pushed bearer token belongs to. Unknown, mismatched (another source's
/// secret), deleted and disabled sources are all refused alike.
pub async fn authenticate(db: &Db, presented: Option<&str>) -> Result<Source> {
    let refused = || Error::InvalidToken("missing or invalid discovery source token".into());
    let presented = presented.ok_or_else(refused)?;
    let id = token::source_id(presented).ok_or_else(refused)?;
    let source = find(db, id).await?.ok_or_else(refused)?;
    if !token::verify(&source.token_sha256, presented) || !source.enabled {
        return Err(refused());
    }
    Ok(source)
}

/// Adds an import's counts to the source and stamps its last push or poll.
pub async fn record_activity(
    db: &Db,
    id: &str,
    received: i64,
    discovered: i64,
    polled: Option<std::result::Result<(), String>>,
) -> Result<()> {
    let now = time::now_ms();
    match polled {
        None => {
            sqlx::query(
                "UPDATE discovery_sources SET last_ingest_at = $2, \
                 records_received = records_received + $3, \
                 records_discovered = records_discovered + $4 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(received)
            .bind(discovered)
            .execute(db.pool())
            .await?;
        }
        Some(outcome) => {
            sqlx::query(
                "UPDATE discovery_sources SET last_poll_at = $2, last_error = $5, \
                 records_received = records_received + $3, \
                 records_discovered = records_discovered + $4 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(received)
            .bind(discovered)
            .bind(outcome.err())
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}
