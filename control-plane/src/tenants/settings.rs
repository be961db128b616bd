//! Per-tenant settings filters enforce (approval mode and timeout, required intent and memory
//! provenance, rate limits) and the tenant's intent rules. Read and replaced through the admin API;
//! each change is audited and recorded as a state version, so every filter learns it like a policy.

use intentgate_core::config::{ApprovalMode, TenantSettings, strict};
use intentgate_core::intent::{IntentRule, IntentRules};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::Change;
use crate::{audit, time, validate};

/// A filter holds a call for at most this long waiting for a human.
pub const MAX_APPROVAL_TIMEOUT_SECS: u64 = 3600;
/// A parked approval lives at most this long (30 days).
pub const MAX_APPROVAL_LIFETIME_SECS: u64 = 30 * 86_400;
pub const MAX_INTENT_RULES: usize = 1000;

#[derive(Debug, Serialize)]
pub struct Settings {
    pub tenant: String,
    pub settings: TenantSettings,
    pub intent_rules: Vec<IntentRule>,
    /// `None` while the tenant runs on the defaults.
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[serde(deserialize_with = "strict::object")]
    pub settings: TenantSettings,
    #[serde(default, deserialize_with = "strict::objects")]
    pub intent_rules: Vec<IntentRule>,
}

pub async fn get(db: &Db, tenant: &str) -> Result<Settings> {
    let row = sqlx::query(
        "SELECT settings, intent_rules, updated_at, updated_by FROM tenant_settings WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(Settings {
            tenant: tenant.to_owned(),
            settings: TenantSettings::default(),
            intent_rules: Vec::new(),
            updated_at: None,
            updated_by: None,
        });
    };
    let stored = |what: &str, e: serde_json::Error| Error::Internal(format!("stored {what}: {e}"));
    Ok(Settings {
        tenant: tenant.to_owned(),
        settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)
            .map_err(|e| stored("settings", e))?,
        intent_rules: serde_json::from_str(&row.try_get::<String, _>("intent_rules")?)
            .map_err(|e| stored("intent rules", e))?,
        updated_at: Some(time::rfc3339(row.try_get("updated_at")?)),
        updated_by: Some(row.try_get("updated_by")?),
    })
}

fn check(update: &Update) -> Result<()> {
    let settings = &update.settings;
    if settings.approval_timeout_secs == 0
        || settings.approval_timeout_secs > MAX_APPROVAL_TIMEOUT_SECS
    {
        return Err(Error::bad_request(format!(
            "settings.approval_timeout_secs must be 1 to {MAX_APPROVAL_TIMEOUT_SECS}"
        )));
    }
    if settings.approval_lifetime_secs == 0
        || settings.approval_lifetime_secs > MAX_APPROVAL_LIFETIME_SECS
    {
        return Err(Error::bad_request(format!(
            "settings.approval_lifetime_secs must be 1 to {MAX_APPROVAL_LIFETIME_SECS}"
        )));
    }
    for (name, limit) in [
        (
            "per_agent_per_minute",
            settings.rate_limits.per_agent_per_minute,
        ),
        (
            "per_tenant_per_minute",
            settings.rate_limits.per_tenant_per_minute,
        ),
    ] {
        if limit == Some(0) {
            return Err(Error::bad_request(format!(
                "settings.rate_limits.{name} must be at least 1 (omit it for no limit)"
            )));
        }
    }
    if update.intent_rules.len() > MAX_INTENT_RULES {
        return Err(Error::bad_request(format!(
            "at most {MAX_INTENT_RULES} intent_rules"
        )));
    }
    for rule in &update.intent_rules {
        for text in std::iter::once(&rule.id)
            .chain(&rule.keywords)
            .chain(&rule.allow)
            .chain(&rule.forbid)
        {
            validate::required_text("intent_rules", text, 256).map_err(Error::BadRequest)?;
        }
    }
    // The filter compiles the rules the same way; a rule it would refuse is refused here.
    IntentRules::compile(update.intent_rules.clone())
        .map_err(|e| Error::bad_request(format!("intent_rules: {e}")))?;
    Ok(())
}

/// Replaces the tenant's settings and intent rules.
pub async fn put(
    recorder: &Recorder,
    admin: &Admin,
    tenant: &str,
    update: Update,
) -> Result<Settings> {
    check(&update)?;
    let settings = serde_json::to_string(&update.settings)
        .map_err(|e| Error::Internal(format!("settings: {e}")))?;
    let rules = serde_json::to_string(&update.intent_rules)
        .map_err(|e| Error::Internal(format!("intent rules: {e}")))?;
    let actor = admin.actor();
    let mode = match update.settings.approval_mode {
        ApprovalMode::Sync => "sync",
        ApprovalMode::Async => "async",
    };
    let event = audit::record::admin(
        tenant,
        "settings",
        &actor,
        format!(
            "settings: approval {mode} ({} s, parked approvals live {} s), require_intent {}, require_memory_provenance {}, {} intent rules",
            update.settings.approval_timeout_secs,
            update.settings.approval_lifetime_secs,
            update.settings.require_intent,
            update.settings.require_memory_provenance,
            update.intent_rules.len()
        ),
    )?;
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO tenant_settings (tenant, settings, intent_rules, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant) DO UPDATE SET \
         settings = $2, intent_rules = $3, updated_at = $4, updated_by = $5",
    )
    .bind(tenant)
    .bind(&settings)
    .bind(&rules)
    .bind(time::now_ms())
    .bind(&actor)
    .execute(&mut *tx)
    .await?;
    let change = Change::TenantSettings {
        tenant: tenant.to_owned(),
    };
    tx.commit_announcing(event, change).await?;
    get(recorder.db(), tenant).await
}
