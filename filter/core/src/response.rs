//! Rewriting what flows back to the agent: `tools/list` results filtered to the tools a token may
//! call, and errors the gateway answered itself merged into the upstream's answer to a partly
//! refused batch. Works on `application/json` bodies and on `text/event-stream` bodies alike.

use std::collections::HashSet;

use serde_json::Value;
use serde_json::value::RawValue;

/// The ids of the `tools/list` requests whose results must be filtered, kept by value rather than
/// by spelling: a client may write `"\u0031"`, `1.0` or `1e0` where the server echoes `"1"` or `1`,
/// and matching the raw text would let that result through unfiltered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    keys: HashSet<String>,
    /// The ids as the request wrote them, for display.
    raw: Vec<String>,
}

impl IdSet {
    /// Adds an id given as its raw JSON text.
    pub fn insert(&mut self, raw: &str) {
        let key = serde_json::from_str::<Value>(raw).map_or_else(|_| raw.to_owned(), |id| key(&id));
        if self.keys.insert(key) {
            self.raw.push(raw.to_owned());
        }
    }

    pub fn contains(&self, id: &Value) -> bool {
        self.keys.contains(&key(id))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ids' raw JSON texts, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.raw.iter().map(String::as_str)
    }
}

/// An id's value, tagged by type so that `"1"` and `1` stay apart; numbers compare as numbers. Two
/// huge integers that share an f64 only make the filter apply to more answers, never to fewer.
fn key(id: &Value) -> String {
    match id {
        Value::String(s) => format!("s:{s}"),
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| format!("n:{n}"), |f| format!("n:{f}")),
        other => other.to_string(),
    }
}

/// Removes from every `tools/list` result with an id in `ids` the tools `allowed` rejects.
/// `None` when the body is not JSON: the caller refuses to pass through what it cannot filter.
pub fn filter_tools_json(
    body: &[u8],
    ids: &IdSet,
    allowed: &dyn Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    match &mut value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|m| filter_message(m, ids, allowed)),
        message => filter_message(message, ids, allowed),
    }
    serde_json::to_vec(&value).ok()
}

fn filter_message(message: &mut Value, ids: &IdSet, allowed: &dyn Fn(&str) -> bool) {
    if !message.get("id").is_some_and(|id| ids.contains(id)) {
        return;
    }
    if let Some(tools) = message
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    {
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(allowed)
        });
    }
}

/// The same filtering over a server-sent-event stream: each event's `data` is one JSON-RPC message.
/// Events that are not JSON pass unchanged (they carry no tool list).
pub fn filter_tools_sse(body: &[u8], ids: &IdSet, allowed: &dyn Fn(&str) -> bool) -> Vec<u8> {
    // SSE ends lines with CRLF, CR or LF (sse-starlette, under the Python MCP SDK, writes CRLF);
    // events are split on blank lines, so every ending is made LF first.
    let text = String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    for event in split_events(&text) {
        out.push_str(&rewrite_event(event, |data| {
            filter_tools_json(data.as_bytes(), ids, allowed)
                .and_then(|bytes| String::from_utf8(bytes).ok())
        }));
    }
    out.into_bytes()
}

/// Events with their terminating blank line; a trailing partial event is kept as is.
fn split_events(text: &str) -> Vec<&str> {
    let mut events = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("\n\n") {
        let (event, tail) = rest.split_at(pos + 2);
        events.push(event);
        rest = tail;
    }
    if !rest.is_empty() {
        events.push(rest);
    }
    events
}

/// Rewrites the `data` of one event, keeping its other fields (`event:`, `id:`) in place.
fn rewrite_event(event: &str, rewrite: impl Fn(&str) -> Option<String>) -> String {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return event.to_owned();
    }
    let Some(new_data) = rewrite(&data.join("\n")) else {
        return event.to_owned();
    };
    let mut out = String::with_capacity(event.len());
    let mut wrote_data = false;
    for line in event.lines() {
        if line.starts_with("data:") {
            if !wrote_data {
                out.push_str("data: ");
                out.push_str(&new_data);
                out.push('\n');
                wrote_data = true;
            }
        } else if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

/// Appends locally answered errors to the upstream's JSON answer to a batch.
pub fn merge_json(upstream: &[u8], local: &[String]) -> Option<Vec<u8>> {
    let mut items: Vec<Box<RawValue>> = if upstream.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        match serde_json::from_slice::<Value>(upstream).ok()? {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| serde_json::value::to_raw_value(&v).ok())
                .collect(),
            single => vec![serde_json::value::to_raw_value(&single).ok()?],
        }
    };
    for error in local {
        items.push(RawValue::from_string(error.clone()).ok()?);
    }
    serde_json::to_vec(&items).ok()
}

/// Locally answered errors as server-sent events, to put in front of the upstream's event stream.
pub fn sse_events(local: &[String]) -> String {
    let mut out = String::new();
    for error in local {
        out.push_str("event: message\ndata: ");
        out.push_str(error);
        out.push_str("\n\n");
    }
    out
}

/// A batch body keeping only the elements at the given positions.
pub fn subset_batch(body: &[u8], keep: &[usize]) -> Option<Vec<u8>> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
    let kept: Vec<&RawValue> = keep.iter().filter_map(|&i| items.get(i).copied()).collect();
    serde_json::to_vec(&kept).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn only_reads(name: &str) -> bool {
        name.starts_with("read_")
    }

    fn ids(list: &[&str]) -> IdSet {
        let mut set = IdSet::default();
        list.iter().for_each(|raw| set.insert(raw));
        set
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_invoice"},{"name":"transfer_funds"},{"name":"read_vendor"}],"nextCursor":"c"}}"#;

    #[test]
    fn tools_list_json_keeps_only_allowed_tools() {
        let out = filter_tools_json(LIST.as_bytes(), &ids(&["1"]), &only_reads).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["result"]["tools"],
            json!([{"name":"read_invoice"},{"name":"read_vendor"}])
        );
        assert_eq!(v["result"]["nextCursor"], "c");
        // Another id is left alone.
        let out = filter_tools_json(LIST.as_bytes(), &ids(&["2"]), &only_reads).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 3);
        assert!(filter_tools_json(b"not json", &ids(&["1"]), &only_reads).is_none());
    }

    #[test]
    fn tools_list_sse_is_filtered_event_by_event() {
        let body = format!(
            "event: message\nid: 7\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nevent: message\ndata: {LIST}\n\n"
        );
        let out = String::from_utf8(filter_tools_sse(body.as_bytes(), &ids(&["1"]), &only_reads))
            .unwrap();
        assert!(out.starts_with("event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"));
        assert!(out.contains("read_vendor"));
        assert!(!out.contains("transfer_funds"));
        assert!(out.ends_with("\n\n"));
    }

    #[test]
    fn a_tools_list_result_is_filtered_whatever_spelling_its_id_had() {
        for request_id in ["1", "1.0", "1e0", " 1"] {
            let out = filter_tools_json(LIST.as_bytes(), &ids(&[request_id]), &only_reads).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v["result"]["tools"].as_array().unwrap().len(),
                2,
                "{request_id}"
            );
        }
        let echoed = LIST.replace(r#""id":1"#, r#""id":"1""#);
        for request_id in [r#""\u0031""#, r#""1""#] {
            let out =
                filter_tools_json(echoed.as_bytes(), &ids(&[request_id]), &only_reads).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v["result"]["tools"].as_array().unwrap().len(),
                2,
                "{request_id}"
            );
        }
        // A string id is not the number with the same digits.
        let out = filter_tools_json(echoed.as_bytes(), &ids(&["1"]), &only_reads).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn sse_events_ended_by_crlf_are_filtered_one_by_one() {
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
        let body = format!(
            "event: message\r\ndata: {progress}\r\n\r\nevent: message\r\ndata: {LIST}\r\n\r\n"
        );
        let out = String::from_utf8(filter_tools_sse(body.as_bytes(), &ids(&["1"]), &only_reads))
            .unwrap();
        assert!(out.contains(progress), "{out}");
        assert!(
            out.contains("read_vendor") && !out.contains("transfer_funds"),
            "{out}"
        );
    }

    #[test]
    fn local_errors_merge_into_json_and_sse_answers() {
        let err = r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32012,"message":"Denied by policy","data":{}}}"#.to_string();
        let merged = merge_json(
            br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            std::slice::from_ref(&err),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["error"]["code"], -32012);
        // A single object (a server answering a one-element batch) becomes an array too.
        let merged = merge_json(
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            std::slice::from_ref(&err),
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&merged)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            sse_events(std::slice::from_ref(&err)),
            format!("event: message\ndata: {err}\n\n")
        );
    }

    #[test]
    fn subset_batch_keeps_the_chosen_elements_verbatim() {
        let body = br#"[ {"a":1}, {"b":2} ,{"c":3}]"#;
        assert_eq!(
            subset_batch(body, &[0, 2]).unwrap(),
            br#"[{"a":1},{"c":3}]"#
        );
    }
}
