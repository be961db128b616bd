//! Timestamps: stored as unix milliseconds, shown as RFC 3339. Audit events carry the core's
//! fixed-width `YYYY-MM-DDTHH:MM:SS.mmmZ`, which sorts as text, so filters compare in that form.

use intentgate_core::time::rfc3339_millis;

use crate::error::{Error, Result};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with second precision, as the API reference shows times.
pub fn rfc3339(unix_millis: i64) -> String {
    intentgate_core::time::rfc3339_secs(unix_millis.div_euclid(1000))
}

/// Parses a query parameter given as RFC 3339 into unix milliseconds.
pub fn parse_param(name: &str, text: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Error::bad_request(format!(
                "{name} must be an RFC 3339 timestamp such as 2026-06-14T13:42:00Z"
            ))
        })
}

/// The audit form of a parameter, for comparison with stored `ts` text.
pub fn audit_ts_param(name: &str, text: &str) -> Result<String> {
    let ms = parse_param(name, text)?;
    if !(0..=253_402_300_799_999).contains(&ms) {
        return Err(Error::bad_request(format!("{name} is out of range")));
    }
    Ok(rfc3339_millis(ms))
}

/// Unix milliseconds of an audit `ts`, which must be in the core's canonical form.
pub fn parse_audit_ts(ts: &str) -> Option<i64> {
    let ms = chrono::DateTime::parse_from_rfc3339(ts)
        .ok()?
        .timestamp_millis();
    (rfc3339_millis(ms) == ts).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_normalise_to_the_audit_form() {
        assert_eq!(
            audit_ts_param("since", "2026-06-14T15:42:00+02:00").unwrap(),
            "2026-06-14T13:42:00.000Z"
        );
        assert!(
            audit_ts_param("since", "yesterday")
                .unwrap_err()
                .to_string()
                .contains("since")
        );
        assert_eq!(
            parse_audit_ts("2026-06-14T13:42:00.123Z"),
            Some(1_781_444_520_123)
        );
        assert_eq!(parse_audit_ts("2026-06-14T13:42:00Z"), None);
    }
}
