//! Filtering and paging the audit log. Lists run newest first by storage position; every filter
//! reads a column generated from the hashed event body.

use intentgate_core::decision::AuditDecision;
use serde_json::value::RawValue;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::page::{Page, Paged};
use crate::{time, validate};

pub const LIST: &str = "audit";

/// The filters of the audit query and export, parsed and normalised.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// `None`: every tenant (superadmin only).
    pub tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    decision: Option<String>,
    tool: Option<String>,
    subject: Option<String>,
}

/// The filter parameters as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterParams<'a> {
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub subject: Option<&'a str>,
}

impl Filters {
    /// `since` is inclusive and `until` exclusive, both RFC 3339.
    pub fn parse(tenant: Option<String>, params: FilterParams<'_>) -> Result<Self> {
        let decision = params
            .decision
            .map(|d| {
                AuditDecision::parse(d)
                    .map(|d| d.as_str().to_owned())
                    .ok_or_else(|| {
                        Error::bad_request(
                            "decision must be one of allow, deny, escalate, approve, reject",
                        )
                    })
            })
            .transpose()?;
        Ok(Filters {
            tenant,
            since: params
                .since
                .map(|t| time::audit_ts_param("since", t))
                .transpose()?,
            until: params
                .until
                .map(|t| time::audit_ts_param("until", t))
                .transpose()?,
            decision,
            tool: text_filter("tool", params.tool)?,
            subject: text_filter("subject", params.subject)?,
        })
    }

    /// The cursor scope: cursors are only valid for the tenant scope they were issued in.
    pub fn scope(&self) -> &str {
        self.tenant.as_deref().unwrap_or("*")
    }

    /// `WHERE` conditions with `$1..$n` placeholders, and the values to bind, in order.
    pub(super) fn sql(&self) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        let conditions = [
            ("tenant =", &self.tenant),
            ("ts >=", &self.since),
            ("ts <", &self.until),
            ("decision =", &self.decision),
            ("tool =", &self.tool),
            ("agent_id =", &self.subject),
        ];
        for (condition, value) in conditions {
            if let Some(value) = value {
                binds.push(value.clone());
                clauses.push(format!("{condition} ${}", binds.len()));
            }
        }
        if clauses.is_empty() {
            clauses.push("1 = 1".into());
        }
        (clauses.join(" AND "), binds)
    }
}

fn text_filter(name: &str, value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|v| {
            validate::optional_text(name, v, 256)
                .map(|()| v.to_owned())
                .map_err(Error::BadRequest)
        })
        .transpose()
}

/// One page of events, each the stored canonical JSON, and the cursor for the next page.
pub async fn list(db: &Db, filters: &Filters, page: Page) -> Result<Paged<Box<RawValue>>> {
    let (conditions, binds) = filters.sql();
    let n = binds.len();
    let sql = format!(
        "SELECT pos, body FROM audit_events WHERE {conditions} AND pos < ${} \
         ORDER BY pos DESC LIMIT ${}",
        n + 1,
        n + 2
    );
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    page.run(db, query, |row| {
        let body = RawValue::from_string(row.try_get("body")?)
            .map_err(|e| Error::Internal(format!("stored audit event is not JSON: {e}")))?;
        Ok((row.try_get("pos")?, body))
    })
    .await
}
