//! Governance reports (`GET /api/reports/{type}`): read-only roll-ups over the inventory,
//! ownership, attestation campaigns and the audit log. Each report is built once as a [`Report`]
//! holding both its JSON document and its flat table, so the two formats never disagree.

mod access;
mod activity;
mod attestation;
mod posture;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::Db;
use crate::time;

/// The flat form: one header row, then rows of text cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub json: Value,
    pub table: Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Posture,
    Access,
    Attestation,
    Activity,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "posture" => Some(Kind::Posture),
            "access" => Some(Kind::Access),
            "attestation" => Some(Kind::Attestation),
            "activity" => Some(Kind::Activity),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Posture => "posture",
            Kind::Access => "access",
            Kind::Attestation => "attestation",
            Kind::Activity => "activity",
        }
    }
}

/// The audit-log window of the activity report: `since` inclusive, `until` exclusive, both
/// audit-form timestamps. Defaults to the last 30 days.
#[derive(Debug, Clone)]
pub struct Window {
    pub since: String,
    pub until: String,
}

pub const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;

impl Window {
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Self> {
        let now = time::now_ms();
        let until = match until {
            Some(text) => time::audit_ts_param("until", text)?,
            None => intentgate_core::time::rfc3339_millis(now),
        };
        let since = match since {
            Some(text) => time::audit_ts_param("since", text)?,
            None => intentgate_core::time::rfc3339_millis(now - DEFAULT_WINDOW_MS),
        };
        if since >= until {
            return Err(Error::bad_request("since must be before until"));
        }
        Ok(Window { since, until })
    }
}

/// Builds a report over one tenant (or, `None`, every tenant).
pub async fn build(db: &Db, kind: Kind, scope: Option<&str>, window: &Window) -> Result<Report> {
    let mut report = match kind {
        Kind::Posture => posture::build(db, scope).await?,
        Kind::Access => access::build(db, scope).await?,
        Kind::Attestation => attestation::build(db, scope).await?,
        Kind::Activity => activity::build(db, scope, window).await?,
    };
    if let Value::Object(object) = &mut report.json {
        object.insert("report".into(), kind.as_str().into());
        object.insert("tenant".into(), scope.map_or(Value::Null, Value::from));
        object.insert("generated_at".into(), time::rfc3339(time::now_ms()).into());
    }
    Ok(report)
}

/// RFC 4180 CSV of the table, with a header row.
pub fn csv(table: &Table) -> Vec<u8> {
    let mut out = Vec::new();
    let header: Vec<String> = table.columns.iter().map(|c| (*c).to_owned()).collect();
    for row in std::iter::once(&header).chain(table.rows.iter()) {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            crate::audit::export::csv_field(cell, &mut out);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A percentage of `part` in `whole`, rounded down; 0 of 0 is 0.
pub(crate) fn pct(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { part * 100 / whole }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_rfc4180_csv() {
        let table = Table {
            columns: &["a", "b"],
            rows: vec![vec!["x,y".into(), "say \"hi\"".into()]],
        };
        assert_eq!(
            String::from_utf8(csv(&table)).unwrap(),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(pct(1, 3), 33);
        assert_eq!(pct(0, 0), 0);
        assert!(Window::parse(Some("2026-01-02T00:00:00Z"), Some("2026-01-01T00:00:00Z")).is_err());
        assert!(Kind::parse("posture").is_some() && Kind::parse("other").is_none());
    }
}
