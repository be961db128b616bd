//! Approvals: calls a policy escalated, parked for a human (SPEC §4). Filters park them, wait for the
//! decision, use each approval once and say when a held call ended without one ([`runtime`]);
//! operators list them and decide each once ([`decide`]); approvals nobody can use any more are
//! ended, each with an audit event ([`sweep`]).
//!
//! An approval lives as long as someone can use it. One a filter holds its call for ends with the
//! hold: decided, timed out, or abandoned when the client (or the filter) went away. One answered
//! -32019 at once (parked, the agent retries with its id) expires after the tenant's
//! `approval_lifetime_secs`, and so does an approved one nobody used.

pub mod decide;
pub mod runtime;
pub mod sweep;

pub use decide::{DecideRequest, Verdict, decide};

use intentgate_core::audit::{AuditEvent, EventKind, canonical_json};
use intentgate_core::decision::AuditDecision;
use intentgate_core::exchange::arguments_digest_of;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{ids, time, validate};

/// The cursor list name of approvals.
pub const LIST: &str = "approvals";
pub(crate) const COLUMNS: &str = "pos, id, tenant, agent_id, capability_token_id, root_capability_token_id, \
                       tool, arguments, escalating_rule, created_at, status, held, expires_at, decided_by, \
                       decided_at, decision_reason, used_at, ended_at, end_reason";

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a human.
    Pending,
    Approved,
    Rejected,
    /// Its held call's timeout passed undecided.
    TimedOut,
    /// Its held call's client, or the filter holding it, went away undecided.
    Abandoned,
    /// Its lifetime passed, undecided or approved and not used.
    Expired,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::TimedOut => "timed_out",
            Status::Abandoned => "abandoned",
            Status::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            "timed_out" => Status::TimedOut,
            "abandoned" => Status::Abandoned,
            "expired" => Status::Expired,
            other => return Err(Error::Internal(format!("stored approval status {other}"))),
        })
    }

    /// How it is told to someone who wants to use or decide it.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Pending => "is pending",
            Status::Approved => "was approved",
            Status::Rejected => "was rejected",
            Status::TimedOut => "timed out",
            Status::Abandoned => "was abandoned",
            Status::Expired => "expired",
        }
    }
}

/// How the control plane ends held calls' approvals whose filter stopped telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a held call's approval may go without its filter waiting for it, or past its hold's
    /// deadline, before the control plane ends it on its own (abandoned, timed out).
    pub grace_ms: u64,
}

/// `INTENTGATE_APPROVAL_GRACE_MS` when unset.
pub const DEFAULT_GRACE_MS: u64 = 30_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            grace_ms: DEFAULT_GRACE_MS,
        }
    }
}

impl Settings {
    /// `INTENTGATE_APPROVAL_GRACE_MS`: 100 to 3,600,000.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> std::result::Result<Self, String> {
        const NAME: &str = "INTENTGATE_APPROVAL_GRACE_MS";
        let Some(text) = get(NAME) else {
            return Ok(Settings::default());
        };
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (100..=3_600_000).contains(ms))
            .map(|grace_ms| Settings { grace_ms })
            .ok_or_else(|| {
                format!(
                    "{NAME}: {text:?} is not a whole number of milliseconds from 100 to 3600000"
                )
            })
    }
}

/// Which approvals a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Those a human can still decide (the default): pending, and not past their time.
    Live,
    One(Status),
    /// Approved or rejected.
    Decided,
    /// Ended without a decision: timed out, abandoned, expired.
    Ended,
    All,
}

impl Filter {
    pub fn parse(text: Option<&str>) -> Result<Self> {
        Ok(match text {
            None | Some("pending") => Filter::Live,
            Some("approved") => Filter::One(Status::Approved),
            Some("rejected") => Filter::One(Status::Rejected),
            Some("timed_out") => Filter::One(Status::TimedOut),
            Some("abandoned") => Filter::One(Status::Abandoned),
            Some("expired") => Filter::One(Status::Expired),
            Some("decided") => Filter::Decided,
            Some("ended") => Filter::Ended,
            Some("all") => Filter::All,
            Some(_) => {
                return Err(Error::bad_request(
                    "status must be pending, approved, rejected, timed_out, abandoned, expired, decided, ended or all",
                ));
            }
        })
    }

    /// The key list cursors are bound to.
    pub fn key(self) -> &'static str {
        match self {
            Filter::Live => "pending",
            Filter::One(status) => status.as_str(),
            Filter::Decided => "decided",
            Filter::Ended => "ended",
            Filter::All => "all",
        }
    }

    /// The SQL condition, made of fixed words only; `Some(now)` when it reads the time, as `$2`.
    fn condition(self) -> (String, Option<i64>) {
        match self {
            Filter::Live => (
                "status = 'pending' AND expires_at > $2".to_owned(),
                Some(time::now_ms()),
            ),
            Filter::One(status) => (format!("status = '{}'", status.as_str()), None),
            Filter::Decided => ("status IN ('approved', 'rejected')".to_owned(), None),
            Filter::Ended => (
                "status IN ('timed_out', 'abandoned', 'expired')".to_owned(),
                None,
            ),
            Filter::All => ("TRUE".to_owned(), None),
        }
    }
}

/// How long a new approval lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifetime {
    /// A filter holds the call for `hold_ms` and waits for the decision; it is taken to be gone
    /// when it has not waited for `grace_ms`.
    Held {
        filter_id: String,
        hold_ms: u64,
        grace_ms: u64,
    },
    /// Answered -32019: the agent may retry with the approval for `lifetime_ms`.
    Parked { lifetime_ms: u64 },
}

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
    pub lifetime: Lifetime,
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
    pub status: Status,
    /// Whether a filter holds the call (else the agent retries with the approval's id).
    pub held: bool,
    /// When it can no longer be decided or used: the held call's deadline, or the end of its
    /// lifetime.
    pub expires_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
    pub used_at: Option<String>,
    /// When it ended without being used (timed out, abandoned, expired), and how.
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    #[serde(skip)]
    pub root_capability_token_id: String,
    #[serde(skip)]
    pub(crate) created_ms: i64,
    #[serde(skip)]
    pub(crate) expires_ms: i64,
}

impl Approval {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let arguments: String = row.try_get("arguments")?;
        let when = |column: &str| -> Result<Option<String>> {
            Ok(row.try_get::<Option<i64>, _>(column)?.map(time::rfc3339))
        };
        let created_ms: i64 = row.try_get("created_at")?;
        let expires_ms: i64 = row.try_get("expires_at")?;
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
            created_at: time::rfc3339(created_ms),
            status: Status::parse(&row.try_get::<String, _>("status")?)?,
            held: row.try_get::<i64, _>("held")? != 0,
            expires_at: time::rfc3339(expires_ms),
            decided_by: row.try_get("decided_by")?,
            decided_at: when("decided_at")?,
            decision_reason: row.try_get("decision_reason")?,
            used_at: when("used_at")?,
            ended_at: when("ended_at")?,
            end_reason: row.try_get("end_reason")?,
            created_ms,
            expires_ms,
        })
    }

    /// An `intentgate.approval` event about this approval: its call (agent, tokens, tool, the
    /// arguments redacted), its id and its escalating rule.
    pub(crate) fn event(
        &self,
        decision: AuditDecision,
        method: &str,
        decided_by: &str,
        reason: String,
    ) -> Result<AuditEvent> {
        let mut event = AuditEvent::new(
            ids::new_id()?,
            time::now_ms(),
            EventKind::Approval,
            decision,
        )
        .with_tool(&self.tool, self.arguments.as_object());
        event.tenant.clone_from(&self.tenant);
        event.method = method.to_owned();
        event.decided_by = decided_by.to_owned();
        event.reason = reason;
        event.agent_id.clone_from(&self.agent_id);
        event
            .capability_token_id
            .clone_from(&self.capability_token_id);
        event
            .root_capability_token_id
            .clone_from(&self.root_capability_token_id);
        event.pending_id.clone_from(&self.id);
        event.rule.clone_from(&self.escalating_rule);
        Ok(event)
    }
}

/// Parks a call. The arguments' canonical hash is stored so that an approval can later be bound
/// to exactly these arguments.
pub async fn create(db: &Db, new: NewApproval) -> Result<Approval> {
    let mut conn = db.pool().acquire().await?;
    let id = create_in(&mut conn, new).await?;
    get(db, &id).await
}

/// One approval, whatever its tenant.
pub(crate) async fn get(db: &Db, id: &str) -> Result<Approval> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| Error::not_found(format!("no approval {id}")))?;
    Approval::from_row(&row)
}

/// The digest an approval is bound to: of the arguments' canonical JSON, as the filter computes it.
pub fn arguments_digest(arguments: &Map<String, Value>) -> String {
    arguments_digest_of(&Value::Object(arguments.clone()))
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// [`create`] inside the caller's transaction; returns the new approval's id.
pub async fn create_in(conn: &mut AnyConnection, new: NewApproval) -> Result<String> {
    validate::tenant(&new.tenant).map_err(Error::BadRequest)?;
    let digest = arguments_digest(&new.arguments);
    let arguments = Value::Object(new.arguments);
    let canonical = canonical_json(&arguments);
    let id = ids::new_id()?;
    let now = time::now_ms();
    let (held, filter_id, expires_at, watched_until) = match new.lifetime {
        Lifetime::Held {
            filter_id,
            hold_ms,
            grace_ms,
        } => (
            1_i64,
            filter_id,
            now.saturating_add(millis(hold_ms)),
            Some(now.saturating_add(millis(grace_ms))),
        ),
        Lifetime::Parked { lifetime_ms } => (
            0,
            String::new(),
            now.saturating_add(millis(lifetime_ms)),
            None,
        ),
    };
    sqlx::query(
        "INSERT INTO approvals (id, tenant, agent_id, capability_token_id, \
         root_capability_token_id, tool, arguments, arguments_sha256, escalating_rule, reason, \
         created_at, held, filter_id, expires_at, watched_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .bind(now)
    .bind(held)
    .bind(filter_id)
    .bind(expires_at)
    .bind(watched_until)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Approvals, newest first, of one tenant or (`None`) of all, as `filter` selects them.
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    filter: Filter,
    page: Page,
) -> Result<Paged<Approval>> {
    let scope = tenant.unwrap_or("*");
    let (condition, now) = filter.condition();
    let next = if now.is_some() { 3 } else { 2 };
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE ($1 = '*' OR tenant = $1) AND {condition} \
         AND pos < ${next} ORDER BY pos DESC LIMIT ${}",
        next + 1
    );
    let mut query = sqlx::query(&sql).bind(scope);
    if let Some(now) = now {
        query = query.bind(now);
    }
    page.run(db, query, |row| {
        Ok((row.try_get("pos")?, Approval::from_row(row)?))
    })
    .await
}
