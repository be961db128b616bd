//! Exchange rules: how a trusted issuer's JWT becomes a capability token in a tenant. A rule names
//! the claim that names the agent (`sub` by default; a name starting with `/` is a JSON Pointer,
//! `/kubernetes.io/serviceaccount/name`), the claims that must hold (each one of the listed values,
//! `*` patterns allowed; for a list-valued claim, one of its items), and the most the token may
//! grant. The first enabled rule of the issuer, lowest `priority` first, whose conditions hold
//! decides. Every change is audited.

use std::collections::BTreeMap;

use intentgate_core::glob;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::grant::Ceiling;
use super::issuers;
use super::jwt::Jwt;
use super::registry::{
    self, Table, flag, from_column, from_optional_column, optional_unsigned, signed, to_column,
    unsigned,
};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::tokens::issue::{DEFAULT_TTL_SECONDS, check_grant};
use crate::{audit, ids, time, validate};

pub const LIST: &str = "oauth_exchange_rules";
const MAX_NAME: usize = 200;
const MAX_CONDITIONS: usize = 16;
const MAX_VALUES: usize = 64;
pub const DEFAULT_PRIORITY: i64 = 100;
pub const DEFAULT_SUBJECT_CLAIM: &str = "sub";

pub const TABLE: Table<Rule> = Table {
    name: "oauth_exchange_rules",
    noun: "exchange rule",
    from_row: Rule::from_row,
};

/// Claim → the values it may have.
pub type Conditions = BTreeMap<String, Vec<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    pub trusted_issuer_id: String,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub subject_claim: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub conditions: Option<Conditions>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub step_up: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub priority: Option<i64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub created_by: Option<String>,
}

/// A partial update: fields left out keep their value. The trusted issuer stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdate {
    #[serde(default, deserialize_with = "validate::non_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub subject_claim: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub conditions: Option<Conditions>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub step_up: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub priority: Option<i64>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub trusted_issuer_id: String,
    pub subject_claim: String,
    pub conditions: Conditions,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    pub ttl_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    pub step_up: bool,
    pub priority: i64,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    updated_ms: i64,
}

impl Rule {
    fn from_row(row: &AnyRow) -> Result<Self> {
        use sqlx::Row as _;
        Ok(Rule {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            name: row.try_get("name")?,
            trusted_issuer_id: row.try_get("trusted_issuer_id")?,
            subject_claim: row.try_get("subject_claim")?,
            conditions: from_column(row, "conditions")?,
            tools: from_optional_column(row, "tools")?,
            ttl_seconds: unsigned(row, "ttl_seconds")?,
            max_calls: optional_unsigned(row, "max_calls")?,
            step_up: flag(row, "step_up")?,
            priority: row.try_get("priority")?,
            enabled: flag(row, "enabled")?,
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            updated_at: time::rfc3339(row.try_get("updated_at")?),
            updated_ms: row.try_get("updated_at")?,
        })
    }

    /// Whether every condition holds for `jwt`.
    pub fn matches(&self, jwt: &Jwt) -> bool {
        self.conditions.iter().all(|(claim, allowed)| {
            let holds = |value: &Value| {
                value
                    .as_str()
                    .is_some_and(|v| allowed.iter().any(|a| glob::matches(a, v)))
            };
            match jwt.claim(claim) {
                Some(Value::Array(items)) => items.iter().any(holds),
                Some(value) => holds(value),
                None => false,
            }
        })
    }

    /// The most a token for `jwt` may grant under this rule; `None` when the claim naming the agent
    /// is missing, not a string, or not a usable name.
    pub fn ceiling(&self, jwt: &Jwt) -> Option<Ceiling> {
        let subject = jwt.claim(&self.subject_claim)?.as_str()?;
        validate::required_text("subject", subject, 256).ok()?;
        Some(Ceiling {
            subject: subject.to_owned(),
            tools: self.tools.clone(),
            ttl_seconds: self.ttl_seconds,
            max_calls: self.max_calls,
            step_up: self.step_up,
        })
    }

    fn summary(&self) -> String {
        format!(
            "{} ({}, issuer {}, agent from {}, conditions {:?}, tools {}, ttl {} s{}, priority {}, enabled {})",
            self.id,
            self.name,
            self.trusted_issuer_id,
            self.subject_claim,
            self.conditions,
            self.tools
                .as_ref()
                .map_or_else(|| "any".to_owned(), |t| format!("{t:?}")),
            self.ttl_seconds,
            self.max_calls
                .map(|n| format!(", max_calls {n}"))
                .unwrap_or_default(),
            self.priority,
            self.enabled
        )
    }
}

fn check(
    name: &str,
    subject_claim: &str,
    conditions: &Conditions,
    tools: Option<&[String]>,
    ttl: u64,
    max_calls: Option<u64>,
) -> Result<()> {
    validate::required_text("name", name, MAX_NAME).map_err(Error::BadRequest)?;
    validate::required_text("subject_claim", subject_claim, 256).map_err(Error::BadRequest)?;
    if conditions.len() > MAX_CONDITIONS {
        return Err(Error::bad_request(format!(
            "conditions may name at most {MAX_CONDITIONS} claims"
        )));
    }
    for (claim, values) in conditions {
        validate::required_text("conditions claim", claim, 256).map_err(Error::BadRequest)?;
        if values.is_empty() || values.len() > MAX_VALUES {
            return Err(Error::bad_request(format!(
                "conditions.{claim} must list 1 to {MAX_VALUES} values"
            )));
        }
        for value in values {
            validate::required_text(&format!("conditions.{claim}[]"), value, 1024)
                .map_err(Error::BadRequest)?;
        }
    }
    check_grant(tools, Some(ttl), max_calls)
}

pub async fn create(recorder: &Recorder, admin: &Admin, new: NewRule) -> Result<Rule> {
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let created_by = admin.labelled("created_by", new.created_by)?;
    let subject_claim = new
        .subject_claim
        .unwrap_or_else(|| DEFAULT_SUBJECT_CLAIM.into());
    let conditions = new.conditions.unwrap_or_default();
    let ttl = new.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    check(
        &new.name,
        &subject_claim,
        &conditions,
        new.tools.as_deref(),
        ttl,
        new.max_calls,
    )?;
    validate::id("trusted_issuer_id", &new.trusted_issuer_id).map_err(Error::BadRequest)?;
    let issuer = issuers::TABLE
        .find(recorder.db(), &new.trusted_issuer_id)
        .await?;
    if issuer.is_none_or(|i| i.tenant != tenant) {
        return Err(Error::bad_request(format!(
            "trusted_issuer_id {} names no trusted issuer of tenant {tenant}",
            new.trusted_issuer_id
        )));
    }
    let id = ids::new_id()?;
    let now = time::now_ms();
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO oauth_exchange_rules (id, tenant, name, trusted_issuer_id, subject_claim, \
         conditions, tools, ttl_seconds, max_calls, step_up, priority, enabled, created_by, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(&new.trusted_issuer_id)
    .bind(&subject_claim)
    .bind(to_column(&conditions)?)
    .bind(new.tools.as_ref().map(to_column).transpose()?)
    .bind(signed(ttl)?)
    .bind(new.max_calls.map(signed).transpose()?)
    .bind(i64::from(new.step_up.unwrap_or(false)))
    .bind(new.priority.unwrap_or(DEFAULT_PRIORITY))
    .bind(i64::from(new.enabled.unwrap_or(true)))
    .bind(&created_by.label)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    TABLE
        .commit_written(recorder.db(), tx, &id, true, |rule| {
            audit::record::admin(
                &tenant,
                "oauth_rule_create",
                &created_by.audited,
                format!("created exchange rule {}", rule.summary()),
            )
        })
        .await
}

pub async fn update(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    change: RuleUpdate,
) -> Result<Rule> {
    let db = recorder.db();
    let current = TABLE.get(db, admin, id).await?;
    let name = change.name.unwrap_or_else(|| current.name.clone());
    let subject_claim = change
        .subject_claim
        .unwrap_or_else(|| current.subject_claim.clone());
    let conditions = change
        .conditions
        .unwrap_or_else(|| current.conditions.clone());
    let tools = change.tools.or_else(|| current.tools.clone());
    let ttl = change.ttl_seconds.unwrap_or(current.ttl_seconds);
    let max_calls = change.max_calls.or(current.max_calls);
    check(
        &name,
        &subject_claim,
        &conditions,
        tools.as_deref(),
        ttl,
        max_calls,
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE oauth_exchange_rules SET name = $2, subject_claim = $3, conditions = $4, \
         tools = $5, ttl_seconds = $6, max_calls = $7, step_up = $8, priority = $9, enabled = $10, \
         updated_at = $11 WHERE id = $1 AND updated_at = $12",
    )
    .bind(id)
    .bind(&name)
    .bind(&subject_claim)
    .bind(to_column(&conditions)?)
    .bind(tools.as_ref().map(to_column).transpose()?)
    .bind(signed(ttl)?)
    .bind(max_calls.map(signed).transpose()?)
    .bind(i64::from(change.step_up.unwrap_or(current.step_up)))
    .bind(change.priority.unwrap_or(current.priority))
    .bind(i64::from(change.enabled.unwrap_or(current.enabled)))
    .bind(registry::next_version(current.updated_ms))
    .bind(current.updated_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    TABLE
        .commit_written(db, tx, id, updated == 1, |rule| {
            audit::record::admin(
                &current.tenant,
                "oauth_rule_update",
                &admin.actor(),
                format!("updated exchange rule {}", rule.summary()),
            )
        })
        .await
}

pub async fn delete(recorder: &Recorder, admin: &Admin, id: &str) -> Result<()> {
    let current = TABLE.get(recorder.db(), admin, id).await?;
    let reason = format!("deleted exchange rule {id} ({})", current.name);
    TABLE
        .delete(
            recorder,
            admin,
            &current.tenant,
            id,
            "oauth_rule_delete",
            reason,
        )
        .await
}

/// The rule that decides for a JWT of `issuer_id`: the first enabled one, lowest priority first,
/// whose conditions hold.
pub async fn deciding(db: &Db, issuer_id: &str, jwt: &Jwt) -> Result<Option<Rule>> {
    let rows = sqlx::query(
        "SELECT * FROM oauth_exchange_rules WHERE trusted_issuer_id = $1 AND enabled = 1 \
         ORDER BY priority, pos",
    )
    .bind(issuer_id)
    .fetch_all(db.pool())
    .await?;
    for row in &rows {
        let rule = Rule::from_row(row)?;
        if rule.matches(jwt) {
            return Ok(Some(rule));
        }
    }
    Ok(None)
}

impl registry::Tenanted for Rule {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}
