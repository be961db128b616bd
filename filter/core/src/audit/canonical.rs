//! Canonical JSON, defined once: the bytes an audit event is hashed over.
//!
//! Objects have their keys sorted by byte order, no insignificant whitespace anywhere, strings
//! escaped as serde_json escapes them (`\"`, `\\`, `\n`-style short forms, `\u00XX` for other control
//! characters, everything else literal UTF-8), numbers as serde_json prints them. For the values an
//! audit event holds (ASCII keys, integers, shortest round-trip floats) this coincides with RFC 8785.

use serde_json::Value;

pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(512);
    write_value(&mut out, value);
    // serde_json writes UTF-8 only; the lossy path is never taken.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(out, key);
                out.push(b':');
                write_value(out, val);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        // Strings and scalars print the same in every serde_json configuration, written in place.
        Value::String(s) => write_scalar(out, s),
        other => write_scalar(out, other),
    }
}

fn write_scalar<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a string, number, bool or null to a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
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
    fn strings_and_scalars_print_as_serde_json_values_do() {
        let mut tricky: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        tricky
            .extend(["", "é\u{2028}\u{2029}", "😀\\\"/", "\u{7f}\u{80}\u{ffff}"].map(String::from));
        for s in tricky {
            let value = Value::from(s.as_str());
            assert_eq!(canonical_json(&value), value.to_string(), "{s:?}");
        }
        for value in [
            json!(null),
            json!(true),
            json!(-0.0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1),
        ] {
            assert_eq!(canonical_json(&value), value.to_string());
        }
    }

    #[test]
    fn numbers_print_shortest() {
        assert_eq!(
            canonical_json(&json!([0.042, 1.0, -7, 1e21])),
            "[0.042,1.0,-7,1e+21]"
        );
    }
}
