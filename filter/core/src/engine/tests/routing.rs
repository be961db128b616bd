//! MCP 2026-07-28's `Mcp-Method` / `Mcp-Name` headers held against the body.

use serde_json::json;

use super::*;

fn good() -> String {
    token("agent-1", &["read_*"], None)
}

#[test]
fn headers_that_disagree_with_the_body_are_400_with_32020_and_never_forwarded() {
    let mut proxy = Proxy::standalone();
    let request = Request::post(Some(&good()), tools_call(4, "read_invoice", json!({})))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "delete_account");
    let client = proxy.exchange(request, Upstream::result(4));
    assert!(client.local);
    assert_eq!(client.status, 400);
    let body = client.json();
    assert_eq!(body["id"], 4);
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["error"]["message"], "Header mismatch");
    assert!(
        body["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("Mcp-Name"),
        "{body}"
    );
    proxy.tick();
    let events = proxy.audit_lines();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["decision"], "deny");
    assert_eq!(events[0]["method"], "tools/call");
}

#[test]
fn headers_that_repeat_the_body_are_served_and_a_mismatch_comes_before_the_token() {
    let mut proxy = Proxy::standalone();
    let request = Request::post(Some(&good()), tools_call(5, "read_invoice", json!({})))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "read_invoice");
    let client = proxy.exchange(request, Upstream::result(5));
    assert!(!client.local, "{:?}", client.json());
    let (headers, _) = proxy.upstream_request();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "mcp-name" && v == "read_invoice")
    );
    let unauthenticated = Request::post(None, tools_call(6, "read_invoice", json!({})))
        .header("mcp-method", "tools/list");
    let client = proxy.exchange(unauthenticated, Upstream::result(6));
    assert_eq!((client.status, client.error_code()), (400, -32020));
}
