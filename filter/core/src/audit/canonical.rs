//! Canonical JSON, defined once: the bytes an audit event is hashed over.
//!
//! Objects have their keys sorted by byte order, no insignificant whitespace anywhere, strings
//! escaped as serde_json escapes them (`\"`, `\\`, `\n`-style short forms, `\u00XX` for other control
//! characters, everything else literal UTF-8), numbers as serde_json prints them. For the values an
//! audit event holds (ASCII keys, integers, shortest round-trip floats) this coincides with RFC 8785.

use serde_json::Value;

pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(512);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, val);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::String(s) => write_string(out, s),
        // Scalars print the same in every serde_json configuration.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_no_whitespace_nested() {
        let v =
            json!({"b": 1, "a": {"z": [3, {"y": true, "x": null}], "é": "ü"}, "A": "q\"\n\u{1}"});
        assert_eq!(
            canonical_json(&v),
            r#"{"A":"q\"\n\u0001","a":{"z":[3,{"x":null,"y":true}],"é":"ü"},"b":1}"#
        );
    }

    #[test]
    fn numbers_print_shortest() {
        assert_eq!(
            canonical_json(&json!([0.042, 1.0, -7, 1e21])),
            "[0.042,1.0,-7,1e+21]"
        );
    }
}
