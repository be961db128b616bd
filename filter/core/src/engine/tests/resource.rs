//! The gateway as an OAuth resource server: its metadata answered without a token, and the
//! challenge of its 401 answers.

use serde_json::json;

use super::*;

const BASE: &str = "https://gw.example.com";

fn resource() -> Value {
    json!({"protected_resource": {"url": BASE, "authorization_servers": ["https://as.example.com"]}})
}

fn answered(flight: &Flight) -> &LocalAnswer {
    match &flight.phase {
        Phase::Answered(answer) => answer,
        other => panic!("expected a local answer, got {other:?}"),
    }
}

fn header<'a>(answer: &'a LocalAnswer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn get(path: &str) -> Request<'_> {
    Request {
        method: "GET",
        headers: vec![(":path", path.to_owned())],
        body: Vec::new(),
        trailers: false,
        chunks: 1,
    }
}

#[test]
fn metadata_is_answered_without_a_token_and_never_reaches_the_tool_server() {
    let mut proxy = Proxy::new(&config(json!({}), resource()));
    let flight = proxy.send(get("/.well-known/oauth-protected-resource/v1/mcp"));
    let answer = answered(&flight);
    assert_eq!(answer.status, 200);
    let document: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(document["resource"], format!("{BASE}/v1/mcp"));
    assert_eq!(
        document["authorization_servers"],
        json!(["https://as.example.com"])
    );
    assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    assert!(header(answer, "cache-control").is_some());
    let root = proxy.send(get("/.well-known/oauth-protected-resource"));
    let root: Value = serde_json::from_str(&answered(&root).body).unwrap();
    assert_eq!(root["resource"], BASE);
    assert_eq!(
        answered(&proxy.send(get("/.well-known/oauth-protected-resource/v1/admin"))).status,
        404
    );
    let mut post = Request::post(None, json!({}));
    post.headers
        .push((":path", "/.well-known/oauth-protected-resource".into()));
    let refused = proxy.send(post);
    assert_eq!(answered(&refused).status, 405);
    proxy.tick();
    assert!(
        proxy.audit_lines().is_empty(),
        "metadata is not a governed exchange"
    );
    // Without settings there is no metadata, and the path is still not the tool server's.
    let mut bare = Proxy::standalone();
    let flight = bare.send(get("/.well-known/oauth-protected-resource/v1/mcp"));
    assert_eq!(answered(&flight).status, 404);
}

#[test]
fn a_401_points_to_the_metadata_and_says_whether_the_token_was_refused() {
    let mut proxy = Proxy::new(&config(json!({}), resource()));
    let call = tools_call(1, "read_invoice", json!({}));
    let missing = proxy.send(Request::post(None, call.clone()));
    let answer = answered(&missing);
    assert_eq!(answer.status, 401);
    assert_eq!(
        header(answer, "www-authenticate"),
        Some(
            r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/v1/mcp""#
        )
    );
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(1), json!(-32010))
    );
    let bad = proxy.send(Request::post(Some("igt1.forged"), call.clone()));
    assert_eq!(
        header(answered(&bad), "www-authenticate"),
        Some(
            r#"Bearer error="invalid_token", resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/v1/mcp""#
        )
    );
    let stream = proxy.send(get("/v1/tool-call"));
    assert_eq!(
        header(answered(&stream), "www-authenticate"),
        Some(
            r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/v1/tool-call""#
        )
    );
    // Without settings the challenge is a bare Bearer.
    let mut bare = Proxy::standalone();
    let flight = bare.send(Request::post(None, call));
    assert_eq!(answered(&flight).status, 401);
    assert_eq!(
        header(answered(&flight), "www-authenticate"),
        Some("Bearer")
    );
}

#[test]
fn settings_that_cannot_describe_the_resource_refuse_the_configuration() {
    let bad = json!({"protected_resource": {"url": "gw.example.com", "authorization_servers": ["https://as.example.com"]}});
    let err =
        Runtime::configure(&config(json!({}), bad), "n", [1; 32], &mut Fake::new()).unwrap_err();
    assert!(err.contains("protected_resource.url"), "{err}");
}

#[test]
fn a_token_for_another_resource_is_refused_and_one_for_this_gateway_is_served() {
    let mut proxy = Proxy::new(&config(json!({}), resource()));
    let call = || tools_call(1, "read_invoice", json!({}));
    let elsewhere = token_for(
        "a",
        &["read_*"],
        None,
        Some("https://other.example.com/v1/mcp"),
    );
    let flight = proxy.send(Request::post(Some(&elsewhere), call()));
    let answer = answered(&flight);
    assert_eq!(answer.status, 401);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"]["code"], -32010);
    let reason = body["error"]["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("https://other.example.com/v1/mcp") && reason.contains("not for"),
        "{reason}"
    );
    assert!(
        header(answer, "www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // Another path of this gateway is another resource too.
    let tool_call_only = token_for(
        "a",
        &["read_*"],
        None,
        Some(&format!("{BASE}/v1/tool-call")),
    );
    let flight = proxy.send(Request::post(Some(&tool_call_only), call()));
    assert_eq!(answered(&flight).status, 401);
    // This path's resource, the gateway as a whole (a trailing slash aside), or no audience: served.
    for audience in [
        Some(format!("{BASE}/v1/mcp")),
        Some(format!("{BASE}/")),
        None,
    ] {
        let token = token_for("a", &["read_*"], None, audience.as_deref());
        let client = proxy.exchange(Request::post(Some(&token), call()), Upstream::result(1));
        assert!(!client.local, "{audience:?}: {:?}", client.json());
    }
    // Without resource settings the filter does not know its own resource: any audience is served.
    let mut bare = Proxy::standalone();
    let client = bare.exchange(Request::post(Some(&elsewhere), call()), Upstream::result(1));
    assert!(!client.local, "{:?}", client.json());
}
