//! Signing keys and their rotation. The master key is the first signing key; a rotation makes a new
//! key the one that signs, and keeps the previous ones trusted (filters still verify their tokens)
//! until an operator retires them. Filters learn the trusted set through the sync stream.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::token::IssuerKey;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::master::Keys;
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::Change;
use crate::{audit, ids, time};

/// Gateway-wide admin events (key rotation) are audited in this chain.
pub const SYSTEM_TENANT: &str = "_system";

/// A signing key as operators see it: never its seed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub public_key: String,
    pub status: String,
    pub created_at: String,
    pub retired_at: Option<String>,
}

/// The key that signs new tokens, refreshed when a rotation is learned (here or from a replica).
#[derive(Debug)]
pub struct SigningKeys {
    active: RwLock<Arc<IssuerKey>>,
}

impl SigningKeys {
    /// Makes the master key the active signing key when no key is active yet, then loads the active
    /// one. Replicas starting together insert the same key; the first insert wins.
    pub async fn load(db: &Db, master: &Keys) -> Result<Self> {
        let issuer = master.issuer();
        sqlx::query(
            "INSERT INTO signing_keys (kid, seed, public_key, status, created_at) \
             SELECT $1, $2, $3, 'active', $4 \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE status = 'active') \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(issuer.kid())
        .bind(STANDARD.encode(issuer.seed()))
        .bind(issuer.public_base64())
        .bind(time::now_ms())
        .execute(db.pool())
        .await?;
        let keys = SigningKeys {
            active: RwLock::new(Arc::new(active(db).await?)),
        };
        Ok(keys)
    }

    pub fn active(&self) -> Arc<IssuerKey> {
        match self.active.read() {
            Ok(key) => Arc::clone(&key),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Rereads the active key (after a rotation made by another replica).
    pub async fn reload(&self, db: &Db) -> Result<()> {
        let key = Arc::new(active(db).await?);
        match self.active.write() {
            Ok(mut slot) => *slot = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }

    /// A fresh key signs from now on; the previous active key stays trusted.
    pub async fn rotate(&self, recorder: &Recorder, admin: &Admin) -> Result<KeyInfo> {
        superadmin(admin)?;
        let fresh = IssuerKey::from_seed(&ids::random32()?);
        let mut tx = recorder.begin().await?;
        sqlx::query("UPDATE signing_keys SET status = 'trusted' WHERE status = 'active'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, seed, public_key, status, created_at) VALUES ($1, $2, $3, 'active', $4)",
        )
        .bind(fresh.kid())
        .bind(STANDARD.encode(fresh.seed()))
        .bind(fresh.public_base64())
        .bind(time::now_ms())
        .execute(&mut *tx)
        .await?;
        let event = audit::record::admin(
            SYSTEM_TENANT,
            "rotate_key",
            &admin.actor(),
            format!(
                "signing key {} now signs; earlier keys stay trusted until retired",
                fresh.kid()
            ),
        )?;
        tx.commit_announcing(event, Change::KeysChanged).await?;
        self.reload(recorder.db()).await?;
        info(recorder.db(), fresh.kid()).await
    }

    /// Stops trusting a key that no longer signs: filters refuse its tokens from then on.
    pub async fn retire(&self, recorder: &Recorder, admin: &Admin, kid: &str) -> Result<()> {
        superadmin(admin)?;
        let mut tx = recorder.begin().await?;
        let status: Option<String> = sqlx::query("SELECT status FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("status"))
            .transpose()?;
        match status.as_deref() {
            None => return Err(Error::not_found(format!("no signing key {kid}"))),
            Some("active") => {
                return Err(Error::Conflict(format!(
                    "key {kid} signs new tokens; rotate before retiring it"
                )));
            }
            Some("retired") => return Ok(()),
            Some(_) => {}
        }
        sqlx::query("UPDATE signing_keys SET status = 'retired', retired_at = $2 WHERE kid = $1")
            .bind(kid)
            .bind(time::now_ms())
            .execute(&mut *tx)
            .await?;
        let event = audit::record::admin(
            SYSTEM_TENANT,
            "retire_key",
            &admin.actor(),
            format!("signing key {kid} retired: its tokens are refused from now on"),
        )?;
        tx.commit_announcing(event, Change::KeysChanged).await?;
        Ok(())
    }
}

fn superadmin(admin: &Admin) -> Result<()> {
    match admin {
        Admin::Super => Ok(()),
        Admin::Tenant(_) => Err(Error::Forbidden(
            "signing keys are managed with the superadmin token".into(),
        )),
    }
}

async fn active(db: &Db) -> Result<IssuerKey> {
    let seed: String = sqlx::query("SELECT seed FROM signing_keys WHERE status = 'active'")
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| Error::Unavailable("no active signing key".into()))?
        .try_get("seed")?;
    IssuerKey::from_base64_seed(&seed)
        .map_err(|e| Error::Unavailable(format!("the active signing key is unusable: {e}")))
}

fn key_info(row: &sqlx::any::AnyRow) -> Result<KeyInfo> {
    let retired: Option<i64> = row.try_get("retired_at")?;
    Ok(KeyInfo {
        kid: row.try_get("kid")?,
        public_key: row.try_get("public_key")?,
        status: row.try_get("status")?,
        created_at: time::rfc3339(row.try_get("created_at")?),
        retired_at: retired.map(time::rfc3339),
    })
}

async fn info(db: &Db, kid: &str) -> Result<KeyInfo> {
    let row = sqlx::query(
        "SELECT kid, public_key, status, created_at, retired_at FROM signing_keys WHERE kid = $1",
    )
    .bind(kid)
    .fetch_one(db.pool())
    .await?;
    key_info(&row)
}

/// Every key, newest first.
pub async fn list(db: &Db) -> Result<Vec<KeyInfo>> {
    sqlx::query(
        "SELECT kid, public_key, status, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid",
    )
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(key_info)
    .collect()
}

/// The keys filters trust, as a verifier holds them (to check a capability token presented back to
/// the control plane).
pub async fn trusted_keys(db: &Db) -> Result<intentgate_core::token::PublicKeys> {
    let mut conn = db.pool().acquire().await?;
    let mut keys = intentgate_core::token::PublicKeys::new();
    for (kid, public) in trusted(&mut conn).await? {
        let public = STANDARD.encode(public);
        keys.insert_base64(Some(&kid), &public)
            .map_err(|e| Error::Internal(format!("stored key {kid}: {e}")))?;
    }
    Ok(keys)
}

/// The keys filters trust (active and trusted): `(kid, public key bytes)`.
pub async fn trusted(conn: &mut AnyConnection) -> Result<Vec<(String, Vec<u8>)>> {
    sqlx::query("SELECT kid, public_key FROM signing_keys WHERE status <> 'retired' ORDER BY kid")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            let kid: String = row.try_get("kid")?;
            let public: String = row.try_get("public_key")?;
            let bytes = STANDARD.decode(public).map_err(|_| {
                Error::Internal(format!("stored public key of {kid} is not base64"))
            })?;
            Ok((kid, bytes))
        })
        .collect()
}
