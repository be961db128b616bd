//! JSON-RPC 2.0 envelope: single messages, batches, notifications and responses, parsed without copying
//! the parts the gateway only forwards, and every malformed case mapped to its code.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::decision::{Denial, ErrorCode};

/// Bodies above this are refused before parsing (SPEC §3).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A batch longer than this is refused: each call costs a policy evaluation.
pub const MAX_BATCH_LEN: usize = 100;

/// A parsed HTTP body.
#[derive(Debug)]
pub enum Message<'a> {
    Single(Entry<'a>),
    Batch(Vec<Entry<'a>>),
}

impl<'a> Message<'a> {
    pub fn entries(&self) -> &[Entry<'a>] {
        match self {
            Message::Single(entry) => std::slice::from_ref(entry),
            Message::Batch(entries) => entries,
        }
    }
}

/// One element of a body.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A request (with `id`) or a notification (without).
    Call(Call<'a>),
    /// A client's answer to a server-initiated request (sampling, roots, elicitation).
    Response { id: &'a RawValue },
    /// Not a valid JSON-RPC message; answered with its own error.
    Invalid {
        id: Option<&'a RawValue>,
        error: Denial,
    },
}

#[derive(Debug)]
pub struct Call<'a> {
    /// `None` for a notification.
    pub id: Option<&'a RawValue>,
    pub method: Cow<'a, str>,
    pub params: Option<&'a RawValue>,
}

impl Call<'_> {
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// `params` of `tools/call`.
#[derive(Debug)]
pub struct ToolCall<'a> {
    pub name: Cow<'a, str>,
    /// Always a JSON object when present.
    pub arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Keeps `"id": null` distinct from an absent id: the first is a request, the second a notification.
fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct RawToolCall<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Parses a body. An error here concerns the whole body; a malformed element of a batch becomes
/// `Entry::Invalid` and the rest of the batch is still served.
pub fn parse(body: &[u8]) -> Result<Message<'_>, Denial> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Denial::envelope(
            ErrorCode::InvalidRequest,
            format!(
                "body of {} bytes exceeds the limit of {MAX_BODY_BYTES} bytes",
                body.len()
            ),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Denial::envelope(ErrorCode::ParseError, "body is not valid UTF-8"))?;
    match first_significant_byte(text) {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(parse_error)?;
            if items.is_empty() {
                return Err(Denial::envelope(ErrorCode::InvalidRequest, "empty batch"));
            }
            if items.len() > MAX_BATCH_LEN {
                return Err(Denial::envelope(
                    ErrorCode::InvalidRequest,
                    format!(
                        "batch of {} messages exceeds the limit of {MAX_BATCH_LEN}",
                        items.len()
                    ),
                ));
            }
            Ok(Message::Batch(items.into_iter().map(parse_entry).collect()))
        }
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_str(text).map_err(parse_error)?;
            Ok(Message::Single(parse_entry(raw)))
        }
        _ => {
            // Valid JSON that is neither object nor array is an invalid request; anything else a parse error.
            serde_json::from_str::<&RawValue>(text).map_err(parse_error)?;
            Err(Denial::envelope(
                ErrorCode::InvalidRequest,
                "body must be a JSON-RPC object or a batch array",
            ))
        }
    }
}

fn parse_error(err: serde_json::Error) -> Denial {
    Denial::envelope(ErrorCode::ParseError, format!("invalid JSON: {err}"))
}

fn first_significant_byte(text: &str) -> Option<u8> {
    text.bytes().find(|b| !b.is_ascii_whitespace())
}

fn parse_entry(raw: &RawValue) -> Entry<'_> {
    if first_significant_byte(raw.get()) != Some(b'{') {
        return invalid(None, "message must be a JSON object");
    }
    let entry: RawEntry<'_> = match serde_json::from_str(raw.get()) {
        Ok(entry) => entry,
        Err(err) => return invalid(None, format!("malformed message: {err}")),
    };
    let id = match entry.id {
        Some(id) if !is_valid_id(id) => {
            return invalid(None, "id must be a string, a number or null");
        }
        other => other,
    };
    if entry.jsonrpc.as_deref() != Some("2.0") {
        return invalid(id, "jsonrpc must be \"2.0\"");
    }
    let Some(method) = entry.method else {
        return match (id, entry.result.is_some() ^ entry.error.is_some()) {
            (Some(id), true) => Entry::Response { id },
            _ => invalid(id, "method is required"),
        };
    };
    let method: Cow<'_, str> = match serde_json::from_str(method.get()) {
        Ok(method) => method,
        Err(_) => return invalid(id, "method must be a string"),
    };
    if let Some(params) = entry.params
        && !matches!(first_significant_byte(params.get()), Some(b'{' | b'['))
    {
        return invalid(id, "params must be an object or an array");
    }
    Entry::Call(Call {
        id,
        method,
        params: entry.params,
    })
}

fn invalid<'a>(id: Option<&'a RawValue>, reason: impl Into<String>) -> Entry<'a> {
    Entry::Invalid {
        id,
        error: Denial::envelope(ErrorCode::InvalidRequest, reason),
    }
}

fn is_valid_id(id: &RawValue) -> bool {
    matches!(
        first_significant_byte(id.get()),
        Some(b'"' | b'-' | b'0'..=b'9' | b'n')
    )
}

/// Reads `tools/call` params; every malformed case is -32602.
pub fn tool_call<'a>(call: &Call<'a>) -> Result<ToolCall<'a>, Denial> {
    let params = call
        .params
        .ok_or_else(|| invalid_params("tools/call requires params"))?;
    if first_significant_byte(params.get()) != Some(b'{') {
        return Err(invalid_params("tools/call params must be an object"));
    }
    let raw: RawToolCall<'a> = serde_json::from_str(params.get())
        .map_err(|err| invalid_params(format!("malformed params: {err}")))?;
    let name_raw = raw
        .name
        .ok_or_else(|| invalid_params("params.name is required"))?;
    let name: Cow<'a, str> = serde_json::from_str(name_raw.get())
        .map_err(|_| invalid_params("params.name must be a string"))?;
    if name.is_empty() {
        return Err(invalid_params("params.name must not be empty"));
    }
    // A tool name is matched, logged and stored in the audit chain: no control characters.
    if name.chars().any(char::is_control) {
        return Err(invalid_params(
            "params.name must not contain control characters",
        ));
    }
    let arguments = match raw.arguments {
        Some(args) if args.get().trim() == "null" => None,
        Some(args) if first_significant_byte(args.get()) != Some(b'{') => {
            return Err(invalid_params("params.arguments must be an object"));
        }
        other => other,
    };
    if let Some(args) = arguments
        && serde_json::from_str::<KeyGuard>(args.get()).is_err()
    {
        return Err(invalid_params(format!(
            "params.arguments must not use the key {NUMBER_TOKEN}"
        )));
    }
    Ok(ToolCall { name, arguments })
}

/// serde_json's private token for arbitrary-precision numbers. regorus turns any object whose first
/// key it is into that number: a policy would judge `{"amount": {"<token>": "1"}}` as `amount == 1`
/// while the tool server receives an object.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Walks a JSON value and fails on an object key equal to [`NUMBER_TOKEN`] (after unescaping).
struct KeyGuard;

impl<'de> Deserialize<'de> for KeyGuard {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyGuard)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyGuard {
    type Value = KeyGuard;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<KeyGuard, M::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == NUMBER_TOKEN {
                return Err(serde::de::Error::custom("reserved key"));
            }
            map.next_value::<KeyGuard>()?;
        }
        Ok(KeyGuard)
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<KeyGuard, S::Error> {
        while seq.next_element::<KeyGuard>()?.is_some() {}
        Ok(KeyGuard)
    }

    fn visit_bool<E>(self, _: bool) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
    fn visit_i64<E>(self, _: i64) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
    fn visit_u64<E>(self, _: u64) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
    fn visit_f64<E>(self, _: f64) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
    fn visit_str<E>(self, _: &str) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
    fn visit_unit<E>(self) -> Result<KeyGuard, E> {
        Ok(KeyGuard)
    }
}

fn invalid_params(reason: impl Into<String>) -> Denial {
    Denial::envelope(ErrorCode::InvalidParams, reason)
}

/// Appends one JSON-RPC error response to `out`. `id` is the request's raw id, or `null` when unknown.
pub fn write_error(
    out: &mut String,
    id: Option<&RawValue>,
    code: ErrorCode,
    data: &serde_json::Value,
) {
    use std::fmt::Write;
    let id = id.map_or("null", RawValue::get);
    // The message is a fixed ASCII string without quotes; data is serialized by serde_json.
    let _ = write!(
        out,
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{},"message":"{}","data":{data}}}}}"#,
        code.code(),
        code.message(),
    );
}

/// One error response as a complete body.
pub fn error_body(id: Option<&RawValue>, denial: &Denial) -> String {
    let mut out = String::with_capacity(160);
    write_error(&mut out, id, denial.code, &denial.error_data());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn single(body: &str) -> Entry<'_> {
        match parse(body.as_bytes()).unwrap() {
            Message::Single(entry) => entry,
            Message::Batch(_) => panic!("expected a single message"),
        }
    }

    fn invalid_code(entry: &Entry<'_>) -> i32 {
        match entry {
            Entry::Invalid { error, .. } => error.code.code(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn request_with_any_id_type_parses() {
        for id in [r#""abc""#, "7", "-1.5", "null"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            match single(&body) {
                Entry::Call(call) => {
                    assert_eq!(call.id.map(RawValue::get), Some(id));
                    assert_eq!(call.method, "ping");
                    assert!(!call.is_notification());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn notification_has_no_id() {
        match single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#) {
            Entry::Call(call) => assert!(call.is_notification()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_response_is_recognised() {
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":3,"result":{"roots":[]}}"#),
            Entry::Response { .. }
        ));
    }

    #[test]
    fn oversized_body_is_invalid_request() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse(&body).unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn broken_json_is_parse_error() {
        for body in [&b"{"[..], b"{\"jsonrpc\":", b"not json", b"\xff\xfe", b""] {
            assert_eq!(
                parse(body).unwrap_err().code,
                ErrorCode::ParseError,
                "{body:?}"
            );
        }
    }

    #[test]
    fn scalar_or_empty_batch_is_invalid_request() {
        assert_eq!(parse(b"42").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(parse(b"[]").unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_messages_are_invalid_request() {
        for body in [
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        ] {
            assert_eq!(invalid_code(&single(body)), -32600, "{body}");
        }
    }

    #[test]
    fn invalid_message_keeps_its_id_when_readable() {
        match single(r#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#) {
            Entry::Invalid { id, .. } => assert_eq!(id.map(RawValue::get), Some(r#""x""#)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_serves_each_element_on_its_own() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5, {"jsonrpc":"2.0","method":"notifications/x"}]"#;
        let Message::Batch(entries) = parse(body.as_bytes()).unwrap() else {
            panic!("batch expected")
        };
        assert!(matches!(entries[0], Entry::Call(_)));
        assert_eq!(invalid_code(&entries[1]), -32600);
        assert!(matches!(&entries[2], Entry::Call(c) if c.is_notification()));
    }

    #[test]
    fn oversized_batch_is_refused() {
        let one = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let body = format!("[{}]", vec![one; MAX_BATCH_LEN + 1].join(","));
        assert_eq!(
            parse(body.as_bytes()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    fn call_of(body: &str) -> Result<(String, Option<String>), i32> {
        let Entry::Call(call) = single(body) else {
            panic!("call expected")
        };
        tool_call(&call)
            .map(|t| {
                (
                    t.name.into_owned(),
                    t.arguments.map(|a| a.get().to_string()),
                )
            })
            .map_err(|d| d.code.code())
    }

    #[test]
    fn tool_call_params_are_read() {
        let (name, args) = call_of(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read\u005finvoice","arguments":{"id":7}}}"#,
        )
        .unwrap();
        assert_eq!(name, "read_invoice");
        assert_eq!(args.as_deref(), Some(r#"{"id":7}"#));
    }

    #[test]
    fn malformed_tool_call_params_are_invalid_params() {
        for params in [
            "",
            r#","params":[1]"#,
            r#","params":{}"#,
            r#","params":{"name":7}"#,
            r#","params":{"name":""}"#,
            r#","params":{"name":"read\u0000x"}"#,
            r#","params":{"name":"a\nb"}"#,
            r#","params":{"name":"x","arguments":[1]}"#,
            r#","params":{"name":"x","arguments":"s"}"#,
            // What regorus would read as a number, and the tool server as an object.
            r#","params":{"name":"x","arguments":{"amount":{"$serde_json::private::Number":"1"}}}"#,
            r#","params":{"name":"x","arguments":{"a":[{"\u0024serde_json::private::Number":"1"}]}}"#,
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call"{params}}}"#);
            assert_eq!(call_of(&body), Err(-32602), "{body}");
        }
    }

    #[test]
    fn error_body_is_valid_json_rpc() {
        let body = error_body(
            RawValue::from_string("\"a\"".into()).ok().as_deref(),
            &Denial::capability("revoked"),
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":"a","error":{"code":-32010,"message":"Capability check failed","data":{"check":"capability","reason":"revoked"}}})
        );
        let v: Value = serde_json::from_str(&error_body(None, &Denial::capability("x"))).unwrap();
        assert_eq!(v["id"], Value::Null);
    }
}
