//! One parser per vendor export format, each turning a record into an [`Observation`]. A record a
//! parser cannot read is reported with its index and the reason; it never stops the batch.
//!
//! - `zscaler`: ZIA NSS web logs as JSON (the SIEM feed formats: `datetime`/`hostname`/`url`/
//!   `user`/`ClientIP`..., and the `time`/`host`/`login`/`cltip`/`b64url` formats), with or without
//!   the `{"sourcetype": "zscalernss-web", "event": {...}}` envelope;
//! - `netskope`: Netskope REST API v2 event records (page, application, network, alert events);
//! - `mdca`: Microsoft Defender for Cloud Apps discovered apps (Graph `discoveredCloudAppDetail`)
//!   and activities (the MDCA activities API, and `CloudAppEvents` from advanced hunting);
//! - `infoblox`: Infoblox Threat Defense DNS events (`dns_event` API) and NIOS/BIND query log lines;
//! - `generic`: IntentGate's documented shape for scripts and SIEM exports.

mod fields;
mod generic;
mod infoblox;
mod mdca;
mod netskope;
mod zscaler;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::Observation;

pub use fields::{host_of, parse_time};

/// The export formats a source can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Zscaler,
    Netskope,
    Mdca,
    Infoblox,
    Generic,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [
        Vendor::Zscaler,
        Vendor::Netskope,
        Vendor::Mdca,
        Vendor::Infoblox,
        Vendor::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Zscaler => "zscaler",
            Vendor::Netskope => "netskope",
            Vendor::Mdca => "mdca",
            Vendor::Infoblox => "infoblox",
            Vendor::Generic => "generic",
        }
    }

    pub fn parse_name(text: &str) -> Option<Self> {
        Vendor::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// Reads one record. Only Infoblox has a text form (query log lines); every other format is
    /// a JSON object.
    pub fn parse(self, record: &Value) -> Result<Observation, String> {
        let observation = match (self, record) {
            (Vendor::Infoblox, Value::String(line)) => infoblox::parse_line(line)?,
            (_, Value::Object(_)) => match self {
                Vendor::Zscaler => zscaler::parse(record)?,
                Vendor::Netskope => netskope::parse(record)?,
                Vendor::Mdca => mdca::parse(record)?,
                Vendor::Infoblox => infoblox::parse(record)?,
                Vendor::Generic => generic::parse(record)?,
            },
            (Vendor::Infoblox, _) => {
                return Err("expected a DNS event object or a query log line".into());
            }
            _ => return Err("expected a JSON object".into()),
        };
        if !observation.has_destination() {
            return Err("the record names no destination (host, URL or application)".into());
        }
        Ok(observation)
    }
}

/// Keys under which vendor exports wrap their records: ours, Netskope and Infoblox (`result`),
/// MDCA (`data`), Microsoft Graph (`value`).
const WRAPPERS: [&str; 5] = ["records", "result", "data", "value", "events"];

/// The records of a pulled export: a JSON array, a JSON object wrapping one under a known key,
/// or newline-delimited records (NSS feeds write JSON lines; NIOS writes query log lines, kept
/// as strings for the Infoblox parser).
pub fn export_records(body: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the export is not UTF-8".to_owned())?;
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return match value {
            Value::Array(records) => Ok(records),
            Value::Object(ref object) => Ok(WRAPPERS
                .iter()
                .find_map(|key| object.get(*key).and_then(Value::as_array).cloned())
                .unwrap_or_else(|| vec![value])),
            _ => Err("the export is neither a JSON array nor an object".into()),
        };
    }
    Ok(text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|_| Value::String(line.to_owned()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exports_unwrap_vendor_envelopes_and_lines() {
        assert_eq!(export_records(br#"[{"a":1}]"#).unwrap().len(), 1);
        assert_eq!(
            export_records(br#"{"ok":1,"result":[{"a":1},{"a":2}]}"#)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(export_records(br#"{"value":[{"a":1}]}"#).unwrap().len(), 1);
        let lines =
            export_records(b"{\"a\":1}\nclient 10.0.0.1#5353: query: x IN A +\n\n").unwrap();
        assert_eq!(lines[1], json!("client 10.0.0.1#5353: query: x IN A +"));
        assert!(export_records(b"\xff").is_err());
    }

    #[test]
    fn only_infoblox_reads_text_records() {
        assert!(
            Vendor::Zscaler
                .parse(&json!("a line"))
                .unwrap_err()
                .contains("object")
        );
        assert!(Vendor::Infoblox.parse(&json!(7)).is_err());
        assert!(
            Vendor::Generic
                .parse(&json!({"user": "u"}))
                .unwrap_err()
                .contains("destination")
        );
    }
}
