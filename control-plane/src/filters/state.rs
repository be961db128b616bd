//! The gateway state filters hold, read from the database: a full snapshot, or the delta since a
//! version, built from the change log so every replica sends the same thing.

use std::collections::BTreeSet;

use intentgate_proto::v1::{self, sync_update};
use sqlx::{AnyConnection, Row};

use crate::error::Result;
use crate::keys::signing;
use crate::policies::active;
use crate::store::Db;
use crate::time;

/// Revocations of tokens expired longer than this are no longer sent: they cannot verify anyway.
/// A revocation whose token's expiry is unknown (not minted here) is always sent.
const EXPIRED_REVOCATION_GRACE_MS: i64 = 60 * 60 * 1000;

/// The current state version.
pub async fn version(conn: &mut AnyConnection) -> Result<u64> {
    let version: i64 = sqlx::query("SELECT version FROM sync_version WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get("version")?;
    Ok(u64::try_from(version).unwrap_or(0))
}

/// The whole state. The version is read first: a change committed meanwhile shows in the state
/// and arrives again in the next delta, which applies it idempotently.
pub async fn snapshot(db: &Db) -> Result<v1::SyncUpdate> {
    let mut conn = db.pool().acquire().await?;
    let version = version(&mut conn).await?;
    let keys = keys(&mut conn).await?;
    let names: Vec<String> = sqlx::query(
        "SELECT tenant FROM active_policies UNION SELECT tenant FROM tenant_settings ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| row.try_get("tenant"))
    .collect::<std::result::Result<_, _>>()?;
    let mut tenants = Vec::with_capacity(names.len());
    for name in &names {
        tenants.push(tenant_state(db, &mut conn, name).await?);
    }
    let revocations = sqlx::query(
        "SELECT tenant, jti FROM revocations \
         WHERE expires_at IS NULL OR expires_at > $1 ORDER BY pos",
    )
    .bind(time::now_ms() - EXPIRED_REVOCATION_GRACE_MS)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(v1::Revocation {
            tenant: row.try_get("tenant")?,
            jti: row.try_get("jti")?,
        })
    })
    .collect::<Result<_>>()?;
    Ok(v1::SyncUpdate {
        version,
        kind: Some(sync_update::Kind::Snapshot(v1::Snapshot {
            keys,
            tenants,
            revocations,
        })),
    })
}

/// What changed after `base`, coalesced into one delta; `None` when nothing did.
pub async fn delta(db: &Db, base: u64) -> Result<Option<v1::SyncUpdate>> {
    let mut conn = db.pool().acquire().await?;
    let rows = sqlx::query(
        "SELECT version, kind, tenant, jti FROM sync_changes WHERE version > $1 ORDER BY version",
    )
    .bind(i64::try_from(base).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let version: i64 = last.try_get("version")?;
    let mut tenants = BTreeSet::new();
    let mut revocations = Vec::new();
    let mut keys_changed = false;
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let tenant: String = row.try_get("tenant")?;
        match kind.as_str() {
            "tenant" => {
                tenants.insert(tenant);
            }
            "revocation" => revocations.push(v1::Revocation {
                tenant,
                jti: row.try_get("jti")?,
            }),
            _ => keys_changed = true,
        }
    }
    let mut states = Vec::with_capacity(tenants.len());
    for name in &tenants {
        states.push(tenant_state(db, &mut conn, name).await?);
    }
    let keys = if keys_changed {
        keys(&mut conn).await?
    } else {
        Vec::new()
    };
    Ok(Some(v1::SyncUpdate {
        version: u64::try_from(version).unwrap_or(0),
        kind: Some(sync_update::Kind::Delta(v1::Delta {
            base_version: base,
            keys_changed,
            keys,
            tenants: states,
            revocations,
        })),
    }))
}

async fn keys(conn: &mut AnyConnection) -> Result<Vec<v1::SigningKey>> {
    Ok(signing::trusted(conn)
        .await?
        .into_iter()
        .map(|(kid, public_key)| v1::SigningKey { kid, public_key })
        .collect())
}

async fn tenant_state(db: &Db, conn: &mut AnyConnection, tenant: &str) -> Result<v1::TenantState> {
    let (policy_bytecode, policy_sha256) = match active::current(db, tenant).await? {
        Some((active, bytecode)) => (bytecode, active.rego_sha256),
        None => (Vec::new(), String::new()),
    };
    let settings =
        sqlx::query("SELECT settings, intent_rules FROM tenant_settings WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?;
    let (settings_json, intent_rules_json) = match settings {
        Some(row) => (row.try_get("settings")?, row.try_get("intent_rules")?),
        None => (String::new(), String::new()),
    };
    Ok(v1::TenantState {
        tenant: tenant.to_owned(),
        policy_bytecode,
        policy_sha256,
        settings_json,
        intent_rules_json,
    })
}
