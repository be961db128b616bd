//! Single-use assertions: a client assertion or an identity assertion grant is accepted once per
//! issuer and `jti`, across every replica (the database holds the ids until the assertions expire).

use crate::error::Result;
use crate::store::Db;
use crate::time;

/// Records `jti` of `issuer` as used while an assertion expiring at `expires_at` (unix seconds) could
/// still be accepted (its expiry plus the clock skew); false when it already was.
pub async fn use_once(db: &Db, issuer: &str, jti: &str, expires_at: i64) -> Result<bool> {
    let now = time::now_ms();
    sqlx::query("DELETE FROM oauth_used_assertions WHERE expires_at < $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO oauth_used_assertions (issuer, jti, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (issuer, jti) DO NOTHING",
    )
    .bind(issuer)
    .bind(jti)
    .bind(
        expires_at
            .saturating_add(intentgate_core::token::CLOCK_SKEW_SECS)
            .saturating_mul(1000),
    )
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
