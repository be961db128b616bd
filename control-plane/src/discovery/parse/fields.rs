//! Helpers every vendor parser shares: reading fields by candidate names, URLs, times.

use base64::Engine as _;
use serde_json::Value;

/// Values vendors write for "no value".
const PLACEHOLDERS: [&str; 9] = [
    "", "none", "na", "n/a", "null", "unknown", "-", "0.0.0.0", "nil",
];

/// Longest field kept from a record; longer values are cut (logs carry long URLs and agents).
pub const MAX_FIELD_CHARS: usize = 512;

/// The first present value among `keys` (each a dotted path into nested objects) as text.
/// Numbers are read as text; objects, arrays and booleans are a type error naming the key.
/// Vendor placeholders ("None", "NA", "-", ...) count as absent.
pub fn text(record: &Value, keys: &[&str]) -> Result<Option<String>, String> {
    for key in keys {
        let value = match lookup(record, key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(format!("field `{key}` must be a string")),
        };
        if PLACEHOLDERS.contains(&value.to_ascii_lowercase().as_str()) {
            continue;
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(format!("field `{key}` contains control characters"));
        }
        return Ok(Some(value.chars().take(MAX_FIELD_CHARS).collect()));
    }
    Ok(None)
}

/// The first present value among `keys` as an integer (numbers or numeric strings).
pub fn integer(record: &Value, keys: &[&str]) -> Result<Option<i64>, String> {
    for key in keys {
        match lookup(record, key) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    return Ok(Some(i));
                }
                if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    // Scores and epochs arrive as floats from some exporters.
                    #[allow(clippy::cast_possible_truncation)]
                    return Ok(Some(f as i64));
                }
                return Err(format!("field `{key}` is out of range"));
            }
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => {
                return s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("field `{key}` must be an integer"));
            }
            Some(_) => return Err(format!("field `{key}` must be an integer")),
        }
    }
    Ok(None)
}

fn lookup<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = record.get(path) {
        return Some(value);
    }
    let mut current = record;
    for part in path.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

/// The host of a URL or a bare host name: lower case, without scheme, credentials, port, path or
/// trailing dot. `None` when nothing host-like is left.
pub fn host_of(text: &str) -> Option<String> {
    let rest = text.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, after)| after);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some(host)
}

/// The path of a URL (`/` when it has none), or `None` for a bare host.
pub fn path_of(url: &str) -> Option<String> {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, after)| after);
    let start = rest.find('/')?;
    let path = rest.get(start..)?.split(['?', '#']).next().unwrap_or("/");
    Some(path.chars().take(MAX_FIELD_CHARS).collect())
}

/// Zscaler's `b64url` and similar: the URL base64-encoded.
pub fn decode_base64_text(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Epoch numbers are seconds or milliseconds depending on the vendor; anything past
/// 100,000,000,000 (year 5138 in seconds) is taken as milliseconds.
pub fn epoch_ms(value: i64) -> Option<i64> {
    let ms = if value.abs() >= 100_000_000_000 {
        value
    } else {
        value.checked_mul(1000)?
    };
    (0..=253_402_300_799_999).contains(&ms).then_some(ms)
}

/// A time in any form the vendors write: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), ctime
/// (`Mon Oct 16 22:55:48 2023`, UTC), BIND's `16-Oct-2023 22:55:48.123`, or epoch digits.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return epoch_ms(text.parse().ok()?);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    // Microsoft writes seven fractional digits and sometimes no zone.
    let formats = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%a %b %e %H:%M:%S %Y",
        "%d-%b-%Y %H:%M:%S%.f",
    ];
    let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    formats.iter().find_map(|format| {
        chrono::NaiveDateTime::parse_from_str(&squeezed, format)
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    })
}

/// A time field: absent is `None`; present but unreadable is an error naming the field.
pub fn time(record: &Value, keys: &[&str]) -> Result<Option<i64>, String> {
    for key in keys {
        match lookup(record, key) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) => {
                return n
                    .as_i64()
                    .and_then(epoch_ms)
                    .map(Some)
                    .ok_or_else(|| format!("field `{key}` is not a valid time"));
            }
            Some(Value::String(s)) => {
                return parse_time(s)
                    .map(Some)
                    .ok_or_else(|| format!("field `{key}` is not a readable time: {s:?}"));
            }
            Some(_) => return Err(format!("field `{key}` must be a time")),
        }
    }
    Ok(None)
}

/// Whether a vendor's action word means the request was stopped.
pub fn is_block(action: Option<&str>) -> bool {
    action.is_some_and(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("block") || a == "deny" || a == "denied" || a == "drop" || a == "redirect"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_come_out_of_urls_and_names() {
        assert_eq!(
            host_of("https://user:pw@API.OpenAI.com:443/v1/chat?x=1").as_deref(),
            Some("api.openai.com")
        );
        assert_eq!(
            host_of("api.anthropic.com.").as_deref(),
            Some("api.anthropic.com")
        );
        assert_eq!(
            host_of("mcp.example.com/mcp").as_deref(),
            Some("mcp.example.com")
        );
        assert_eq!(
            host_of("[2001:db8::1]:8443/x").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(host_of("   "), None);
        assert_eq!(host_of("bad host/x"), None);
        assert_eq!(
            path_of("https://h/v1/mcp?session=1").as_deref(),
            Some("/v1/mcp")
        );
        assert_eq!(path_of("h.example"), None);
    }

    #[test]
    fn vendor_times_parse_as_utc() {
        let want = 1_697_496_948_000;
        for text in [
            "2023-10-16T22:55:48Z",
            "2023-10-16 22:55:48",
            "Mon Oct 16 22:55:48 2023",
            "Fri Oct  6 22:55:48 2023",
            "16-Oct-2023 22:55:48.000",
            "1697496948",
            "1697496948000",
            "2023-10-16T22:55:48.0000000",
        ] {
            let got = parse_time(text);
            if text.contains("Oct  6") {
                assert_eq!(got, Some(want - 10 * 86_400_000), "{text}");
            } else {
                assert_eq!(got, Some(want), "{text}");
            }
        }
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn fields_skip_placeholders_and_name_type_errors() {
        let record = json!({"a": "None", "b": " x ", "n": 7, "o": {"deep": "v"}, "bad": [1]});
        assert_eq!(text(&record, &["a", "b"]).unwrap().as_deref(), Some("x"));
        assert_eq!(text(&record, &["n"]).unwrap().as_deref(), Some("7"));
        assert_eq!(text(&record, &["o.deep"]).unwrap().as_deref(), Some("v"));
        assert!(text(&record, &["bad"]).unwrap_err().contains("`bad`"));
        assert_eq!(integer(&json!({"s": "42"}), &["s"]).unwrap(), Some(42));
        assert!(
            time(&json!({"t": "soon"}), &["t"])
                .unwrap_err()
                .contains("`t`")
        );
    }
}
