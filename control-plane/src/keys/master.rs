//! The master key: the Ed25519 seed that signs tokens, and the root of every derived secret.
//! Configured by `INTENTGATE_MASTER_KEY`, or generated once and persisted in the database so that
//! every replica and every restart signs with the same key (SPEC §2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use intentgate_core::token::IssuerKey;
use sha2::Sha256;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Db;

const SETTING: &str = "master_key";

/// The master signing seed, as configured. Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterSeed(pub [u8; 32]);

impl std::fmt::Debug for MasterSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSeed(..)")
    }
}
const CURSOR_INFO: &[u8] = b"intentgate/cursor-key/v1";

/// Everything derived from the master seed.
pub struct Keys {
    issuer: IssuerKey,
    cursor_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.issuer.kid())
            .finish()
    }
}

impl Keys {
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        let hk = Hkdf::<Sha256>::new(None, seed);
        let mut cursor_key = [0u8; 32];
        hk.expand(CURSOR_INFO, &mut cursor_key)
            .map_err(|e| Error::Internal(format!("cursor key derivation: {e}")))?;
        Ok(Keys {
            issuer: IssuerKey::from_seed(seed),
            cursor_key,
        })
    }

    pub fn issuer(&self) -> &IssuerKey {
        &self.issuer
    }

    pub fn seed(&self) -> &[u8; 32] {
        self.issuer.seed()
    }

    pub fn cursor_key(&self) -> &[u8; 32] {
        &self.cursor_key
    }
}

/// The configured seed, else the persisted one, else a new one that is persisted. Concurrent
/// replicas starting together agree: the first insert wins and everyone reads it back.
pub async fn resolve(db: &Db, configured: Option<&MasterSeed>) -> Result<Keys> {
    if let Some(seed) = configured {
        return Keys::from_seed(&seed.0);
    }
    let fresh = STANDARD.encode(crate::ids::random32()?);
    let inserted = sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(SETTING)
    .bind(&fresh)
    .execute(db.pool())
    .await?
    .rows_affected();
    let stored: String = sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(SETTING)
        .fetch_one(db.pool())
        .await?
        .try_get("value")?;
    if inserted == 1 {
        tracing::warn!(
            "INTENTGATE_MASTER_KEY is unset: generated a master key and stored it in the database; \
             set INTENTGATE_MASTER_KEY to manage the key yourself"
        );
    } else {
        tracing::warn!(
            "INTENTGATE_MASTER_KEY is unset: using the master key stored in the database"
        );
    }
    let issuer = IssuerKey::from_base64_seed(&stored)
        .map_err(|e| Error::Unavailable(format!("the stored master key is unusable: {e}")))?;
    Keys::from_seed(issuer.seed())
}
