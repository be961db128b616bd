//! Whole exchanges: what reaches the upstream, what the client gets, what the audit records.

use serde_json::json;

use super::*;

fn good() -> String {
    token("agent-1", &["read_*", "wire_*", "delete_*"], None)
}

#[test]
fn an_allowed_call_reaches_the_upstream_without_the_gateway_headers_and_is_audited_on_the_tick() {
    let mut proxy = Proxy::standalone();
    let request = Request::post(
        Some(&good()),
        tools_call(1, "read_invoice", json!({"n": 7})),
    )
    .header("x-intent-prompt", "show invoice 7")
    .header("x-intentgate-tenant", TENANT);
    let client = proxy.exchange(request, Upstream::result(1));
    assert!(!client.local);
    assert_eq!(client.json()["result"], json!({"content": []}));
    let (headers, body) = proxy.upstream_request();
    for name in ["authorization", "x-intent-prompt", "x-intentgate-tenant"] {
        assert!(
            headers.iter().all(|(k, _)| k != name),
            "{name} reached the upstream"
        );
    }
    assert_eq!(body, tools_call(1, "read_invoice", json!({"n": 7})));
    assert!(
        proxy.audit_lines().is_empty(),
        "written on the tick, not before"
    );
    proxy.tick();
    let events = proxy.audit_lines();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["tool"], "read_invoice");
    assert_eq!(event["upstream_status"], 200);
    assert_eq!(event["remote_ip"], "10.1.2.3");
    assert_eq!(event["rule"], "reads");
    assert_eq!(proxy.stats["intentgate.tool_calls.allow"], 1);
    assert_eq!(proxy.stats["intentgate.audit.events"], 1);
}

#[test]
fn a_denied_call_is_answered_locally_and_never_forwarded() {
    let mut proxy = Proxy::standalone();
    let flight = proxy.send(Request::post(
        Some(&good()),
        tools_call(3, "delete_account", json!({"password": "p"})),
    ));
    assert!(matches!(flight.phase, Phase::Answered(_)));
    let client = proxy.finish(flight, Upstream::result(3));
    assert!(client.local);
    assert_eq!(client.status, 200);
    assert_eq!(client.error_code(), -32012);
    assert_eq!(client.json()["error"]["data"]["rule"], "default_deny");
    proxy.tick();
    let events = proxy.audit_lines();
    assert_eq!(events[0]["decision"], "deny");
    assert_eq!(events[0]["upstream_status"], 0);
    assert_eq!(events[0]["arg_values"]["password"], "[redacted]");
    assert_eq!(proxy.stats["intentgate.tool_calls.deny.policy"], 1);
}

#[test]
fn request_trailers_end_the_body_and_it_is_decided_there() {
    let mut proxy = Proxy::standalone();
    let mut denied = Request::post(Some(&good()), tools_call(1, "delete_x", json!({})));
    denied.trailers = true;
    denied.chunks = 3;
    let client = proxy.exchange(denied, Upstream::result(1));
    assert!(
        client.local,
        "a body ended by trailers must not go unchecked"
    );
    assert_eq!(client.error_code(), -32012);

    let mut allowed = Request::post(Some(&good()), tools_call(2, "read_x", json!({})));
    allowed.trailers = true;
    let flight = proxy.send(allowed);
    assert!(matches!(flight.phase, Phase::Forwarded));
    assert!(!proxy.finish(flight, Upstream::result(2)).local);
}

#[test]
fn a_body_in_chunks_is_held_until_its_end() {
    let mut proxy = Proxy::standalone();
    let mut request = Request::post(Some(&good()), tools_call(1, "read_x", json!({"a": 1})));
    request.chunks = 4;
    let flight = proxy.send(request);
    assert!(matches!(flight.phase, Phase::Forwarded));
    assert_eq!(proxy.upstream_request().1["params"]["name"], "read_x");
}

#[test]
fn a_batch_forwards_the_allowed_calls_and_merges_the_refusals_into_the_answer() {
    let mut proxy = Proxy::standalone();
    let batch = json!([
        tools_call(1, "read_a", json!({})),
        tools_call(2, "delete_b", json!({})),
        {"jsonrpc": "2.0", "id": 3, "method": "no/such/method"},
    ]);
    let flight = proxy.send(Request::post(Some(&good()), batch));
    let (headers, forwarded) = proxy.upstream_request();
    assert_eq!(forwarded, json!([tools_call(1, "read_a", json!({}))]));
    let length = forwarded.to_string().len().to_string();
    assert!(
        headers.contains(&("content-length".to_owned(), length)),
        "the reduced body's length: {headers:?}"
    );
    let client = proxy.finish(
        flight,
        Upstream::json(json!([{"jsonrpc": "2.0", "id": 1, "result": {}}])),
    );
    let answers = client.json();
    let codes: Vec<_> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_u64().unwrap(), a["error"]["code"].as_i64()))
        .collect();
    assert_eq!(codes, vec![(1, None), (2, Some(-32012)), (3, Some(-32601))]);
    proxy.tick();
    assert_eq!(proxy.audit_lines().len(), 3);
}

#[test]
fn refusals_are_the_answer_when_the_upstream_answers_without_a_body() {
    let mut proxy = Proxy::standalone();
    let batch = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        tools_call(2, "delete_b", json!({})),
    ]);
    let client = proxy.exchange(
        Request::post(Some(&good()), batch.clone()),
        Upstream::bodyless(202),
    );
    assert_eq!(client.status, 200);
    assert_eq!(client.json()[0]["error"]["code"], -32012);

    let client = proxy.exchange(Request::post(Some(&good()), batch), Upstream::bodyless(404));
    assert_eq!(client.status, 404, "a client error keeps its status");
    assert_eq!(client.json()[0]["id"], 2);
}

#[test]
fn refusals_beside_forwarded_notifications_turn_a_chunked_202_into_a_json_200() {
    let mut proxy = Proxy::standalone();
    let batch = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        tools_call(2, "delete_b", json!({})),
    ]);
    let mut upstream = Upstream::chunked(202);
    upstream.body = b"  ".to_vec();
    let client = proxy.exchange(Request::post(Some(&good()), batch), upstream);
    assert_eq!(client.status, 200, "clients ignore a 202's body");
    assert_eq!(
        header(&proxy.host.response, "content-type").map(String::as_str),
        Some("application/json")
    );
    let answers = client.json();
    assert_eq!(answers.as_array().map(Vec::len), Some(1), "{answers}");
    assert_eq!(answers[0]["id"], 2);
    assert_eq!(answers[0]["error"]["code"], -32012);

    let batch = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    let client = proxy.exchange(Request::post(Some(&good()), batch), Upstream::chunked(202));
    assert_eq!(
        (client.status, client.body.as_slice()),
        (202, &b""[..]),
        "nothing refused: the 202 passes unchanged"
    );
}

#[test]
fn an_upstream_failure_answers_32603_for_each_forwarded_request() {
    let mut proxy = Proxy::standalone();
    let client = proxy.exchange(
        Request::post(Some(&good()), tools_call(4, "read_a", json!({}))),
        Upstream::bodyless(503),
    );
    assert_eq!(client.status, 200);
    assert_eq!(client.error_code(), -32603);
    assert_eq!(client.json()["error"]["data"]["upstream_status"], 503);

    let mut failing = Upstream::json(json!({"oops": true}));
    failing.status = 500;
    let client = proxy.exchange(
        Request::post(Some(&good()), tools_call(5, "read_a", json!({}))),
        failing,
    );
    assert_eq!(client.status, 200, "the upstream's status is replaced");
    assert_eq!(client.json()["id"], 5);
    assert_eq!(client.error_code(), -32603);
}

fn tools_list_answer(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
        {"name": "read_invoice"}, {"name": "transfer_funds"}, {"name": "wire_money"}
    ]}})
}

#[test]
fn a_tools_list_result_is_filtered_to_the_tokens_tools_in_json() {
    let mut proxy = Proxy::standalone();
    let list = json!({"jsonrpc": "2.0", "id": "1", "method": "tools/list"});
    let client = proxy.exchange(
        Request::post(Some(&good()), list),
        Upstream::json(tools_list_answer(json!("\u{31}"))),
    );
    let names: Vec<_> = client.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["read_invoice", "wire_money"]);
    assert!(
        proxy
            .host
            .response
            .iter()
            .all(|(k, _)| k != "content-length"),
        "the rewritten answer's length is not the upstream's"
    );
}

#[test]
fn a_tools_list_result_is_filtered_in_an_event_stream_even_when_ended_by_trailers() {
    let mut proxy = Proxy::standalone();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let stream = format!(
        "event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\r\n\r\nevent: message\r\ndata: {}\r\n\r\n",
        tools_list_answer(json!(2))
    );
    let upstream = Upstream {
        status: 200,
        content_type: "text/event-stream",
        body: stream.into_bytes(),
        trailers: true,
        chunked: false,
    };
    let client = proxy.exchange(Request::post(Some(&good()), list), upstream);
    let text = String::from_utf8(client.body).unwrap();
    assert!(text.contains("notifications/progress"), "{text}");
    assert!(
        text.contains("read_invoice") && !text.contains("transfer_funds"),
        "{text}"
    );
}

#[test]
fn get_and_delete_need_a_valid_token() {
    let mut proxy = Proxy::standalone();
    for method in ["GET", "DELETE"] {
        let mut request = Request::post(None, json!({}));
        request.method = method;
        request.body.clear();
        let client = proxy.exchange(request, Upstream::bodyless(200));
        assert_eq!(client.status, 401, "{method}");
        assert_eq!(client.error_code(), -32010);

        let mut request = Request::post(Some(&good()), json!({}));
        request.method = method;
        request.body.clear();
        assert!(
            !proxy.exchange(request, Upstream::bodyless(200)).local,
            "{method}"
        );
    }
}

#[test]
fn an_undecodable_header_an_unserved_method_and_an_oversized_body_are_refused() {
    let mut proxy = Proxy::standalone();
    proxy.host.undecodable = Some("x-custom".into());
    let client = proxy.exchange(
        Request::post(Some(&good()), tools_call(1, "read_a", json!({}))),
        Upstream::result(1),
    );
    assert_eq!((client.status, client.error_code()), (400, -32600));
    proxy.host.undecodable = None;

    for method in ["PUT", "PATCH", "HEAD", "OPTIONS"] {
        let mut request = Request::post(Some(&good()), json!({}));
        request.method = method;
        let flight = proxy.send(request);
        let Phase::Answered(answer) = &flight.phase else {
            panic!("{method} was not answered: {:?}", flight.phase);
        };
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(
            answer.headers,
            [("allow", "GET, POST, DELETE".to_owned())],
            "RFC 9110 requires Allow on a 405"
        );
        assert_eq!(
            proxy.finish(flight, Upstream::result(1)).error_code(),
            -32600
        );
    }

    let padding = "x".repeat(crate::jsonrpc::MAX_BODY_BYTES);
    let big = Request::post(
        Some(&good()),
        tools_call(1, "read_a", json!({"p": padding})),
    );
    let client = proxy.exchange(big, Upstream::result(1));
    assert_eq!(client.error_code(), -32600);
    assert!(
        client.json()["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit")
    );
}

#[test]
fn without_held_headers_the_gateway_headers_and_length_go_at_once() {
    let mut proxy = Proxy::new(&config(json!({}), json!({"hold_headers": false})));
    let flight = proxy.send(Request::post(
        Some(&good()),
        tools_call(1, "delete_x", json!({})),
    ));
    assert!(matches!(flight.phase, Phase::Answered(_)));
    let (headers, _) = proxy.upstream_request();
    assert!(
        headers
            .iter()
            .all(|(k, _)| k != "authorization" && k != "content-length")
    );
}

#[test]
fn a_policy_escalation_without_a_control_plane_is_a_denial() {
    let mut proxy = Proxy::standalone();
    let client = proxy.exchange(
        Request::post(Some(&good()), tools_call(1, "wire_money", json!({}))),
        Upstream::result(1),
    );
    assert_eq!(client.error_code(), -32012);
    assert!(
        client.json()["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("no approval service")
    );
}

#[test]
fn audit_lines_are_written_at_the_proxys_level_when_it_is_higher() {
    let mut proxy = Proxy::standalone();
    proxy.host.log_level = Some(Level::Warn);
    proxy.exchange(
        Request::post(Some(&good()), tools_call(1, "read_a", json!({}))),
        Upstream::result(1),
    );
    proxy.exchange(
        Request::post(Some(&good()), tools_call(2, "read_b", json!({}))),
        Upstream::result(2),
    );
    proxy.tick();
    let writes: Vec<_> = proxy
        .host
        .logs
        .iter()
        .filter(|(_, text)| text.starts_with("intentgate-audit "))
        .collect();
    assert_eq!(writes.len(), 1, "one write per tick");
    assert_eq!(writes[0].0, Level::Warn);
    assert_eq!(proxy.audit_lines().len(), 2);
    assert_eq!(
        proxy
            .host
            .calls
            .iter()
            .filter(|c| **c == "log_level")
            .count(),
        1,
        "the level is read on the tick, not per event"
    );
}
