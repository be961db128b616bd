//! Approvals: calls a policy escalated, parked for a human (SPEC §4). Filters park them, wait for the
//! decision and use each approval once ([`runtime`]); operators list the pending ones and decide
//! each once ([`decide`]).

pub mod decide;
pub mod runtime;

pub use decide::{DecideRequest, Verdict, decide};

use intentgate_core::audit::canonical_json;
use intentgate_core::exchange::arguments_digest_of;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{ids, time, validate};

/// The cursor list name of pending approvals.
pub const LIST: &str = "approvals";
pub(crate) const COLUMNS: &str = "pos, id, tenant, agent_id, capability_token_id, root_capability_token_id, \
                       tool, arguments, escalating_rule, created_at";

/// A call to park, as the runtime knows it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub tenant: String,
    pub agent_id: String,
    pub capability_token_id: String,
    pub root_capability_token_id: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub escalating_rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Approval {
    pub id: String,
    pub tenant: String,
    pub agent_id: String,
    pub capability_token_id: String,
    pub tool: String,
    pub arguments: Value,
    pub escalating_rule: String,
    pub created_at: String,
    #[serde(skip)]
    pub root_capability_token_id: String,
}

impl Approval {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let arguments: String = row.try_get("arguments")?;
        Ok(Approval {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            agent_id: row.try_get("agent_id")?,
            capability_token_id: row.try_get("capability_token_id")?,
            root_capability_token_id: row.try_get("root_capability_token_id")?,
            tool: row.try_get("tool")?,
            arguments: serde_json::from_str(&arguments)
                .map_err(|e| Error::Internal(format!("stored approval arguments: {e}")))?,
            escalating_rule: row.try_get("escalating_rule")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
        })
    }
}

/// Parks a call. The arguments' canonical hash is stored so that an approval can later be bound
/// to exactly these arguments.
pub async fn create(db: &Db, new: NewApproval) -> Result<Approval> {
    let mut conn = db.pool().acquire().await?;
    let id = create_in(&mut conn, new).await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
        .bind(&id)
        .fetch_one(db.pool())
        .await?;
    Approval::from_row(&row)
}

/// The digest an approval is bound to: of the arguments' canonical JSON, as the filter computes it.
pub fn arguments_digest(arguments: &Map<String, Value>) -> String {
    arguments_digest_of(&Value::Object(arguments.clone()))
}

/// [`create`] inside the caller's transaction; returns the new approval's id.
pub async fn create_in(conn: &mut AnyConnection, new: NewApproval) -> Result<String> {
    validate::tenant(&new.tenant).map_err(Error::BadRequest)?;
    let digest = arguments_digest(&new.arguments);
    let arguments = Value::Object(new.arguments);
    let canonical = canonical_json(&arguments);
    let id = ids::new_id()?;
    sqlx::query(
        "INSERT INTO approvals (id, tenant, agent_id, capability_token_id, \
         root_capability_token_id, tool, arguments, arguments_sha256, escalating_rule, reason, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&new.tenant)
    .bind(&new.agent_id)
    .bind(&new.capability_token_id)
    .bind(&new.root_capability_token_id)
    .bind(&new.tool)
    .bind(&canonical)
    .bind(digest)
    .bind(&new.escalating_rule)
    .bind(&new.reason)
    .bind(time::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Pending approvals, newest first, of one tenant or (`None`) of all.
pub async fn pending(db: &Db, tenant: Option<&str>, page: Page) -> Result<Paged<Approval>> {
    let scope = tenant.unwrap_or("*");
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE ($1 = '*' OR tenant = $1) AND status = 'pending' \
         AND pos < $2 ORDER BY pos DESC LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(scope);
    page.run(db, query, |row| {
        Ok((row.try_get("pos")?, Approval::from_row(row)?))
    })
    .await
}
