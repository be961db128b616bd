//! Test servers that speak each destination's real wire format — paths, authentication headers,
//! status codes and response bodies as the vendors document them — record the audit events they
//! accept, and fail on request: `fail_next(n)` makes the next n requests fail the way the vendor
//! does when overloaded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const HEC_TOKEN: &str = "0e5c2d3a-hec-token";
pub const DD_API_KEY: &str = "dd-api-key-0123456789";
pub const AZ_CLIENT_SECRET: &str = "azure-client-secret";
pub const AZ_TOKEN: &str = "eyJ0eXAiOiJKV1Qi.test-access-token";
pub const WEBHOOK_SECRET: &str = "webhook-shared-secret";
pub const DCR: &str = "dcr-00000000000000000000000000000000";
pub const STREAM: &str = "Custom-IntentGateAudit_CL";
pub const AZ_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// What a server received.
#[derive(Default)]
pub struct Received {
    /// Every accepted event, in arrival order.
    pub events: Mutex<Vec<Value>>,
    failures: AtomicUsize,
    pub requests: AtomicUsize,
    /// Event ids whose presence in a request makes it fail with the vendor's "bad data" answer.
    pub poison: Mutex<Vec<String>>,
    pub tokens_issued: AtomicUsize,
}

impl Received {
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn failing(&self) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn poisoned(&self, events: &[Value]) -> bool {
        let poison = self.poison.lock().unwrap();
        events
            .iter()
            .any(|e| poison.iter().any(|p| e["id"] == p.as_str()))
    }

    fn accept(&self, events: Vec<Value>) {
        self.events.lock().unwrap().extend(events);
    }

    pub fn ids(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub struct Server {
    pub url: String,
    pub received: Arc<Received>,
}

async fn serve(router: Router<Arc<Received>>) -> Server {
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = router.with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url: format!("http://{addr}"),
        received,
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Splunk HEC: `/services/collector/event`, `Authorization: Splunk <token>`, concatenated JSON
/// envelopes; answers with HEC's `{text, code}` bodies.
pub async fn splunk() -> Server {
    async fn collect(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> Response {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            None => {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"text": "Token is required", "code": 2}),
                );
            }
            Some(v) if v != format!("Splunk {HEC_TOKEN}") => {
                return reply(
                    StatusCode::FORBIDDEN,
                    json!({"text": "Invalid token", "code": 4}),
                );
            }
            Some(_) => {}
        }
        if r.failing() {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"text": "Server is busy", "code": 9}),
            );
        }
        let mut events = Vec::new();
        for (i, envelope) in serde_json::Deserializer::from_slice(&body)
            .into_iter::<Value>()
            .enumerate()
        {
            let Ok(envelope) = envelope else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}),
                );
            };
            if !envelope["time"].is_number()
                || envelope["sourcetype"] != "intentgate:audit"
                || !envelope["event"].is_object()
            {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"text": "Event field is required", "code": 12, "invalid-event-number": i}),
                );
            }
            events.push(envelope["event"].clone());
        }
        if events.is_empty() {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"text": "No data", "code": 5}),
            );
        }
        if r.poisoned(&events) {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0}),
            );
        }
        r.accept(events);
        reply(StatusCode::OK, json!({"text": "Success", "code": 0}))
    }
    serve(Router::new().route("/services/collector/event", post(collect))).await
}

/// Datadog logs intake: `/api/v2/logs`, `DD-API-KEY`, a JSON array of entries; 202 `{}`.
pub async fn datadog() -> Server {
    async fn logs(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> Response {
        if headers.get("dd-api-key").and_then(|v| v.to_str().ok()) != Some(DD_API_KEY) {
            return reply(StatusCode::FORBIDDEN, json!({"errors": ["Forbidden"]}));
        }
        if r.failing() {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errors": ["Service Unavailable"]}),
            );
        }
        let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(&body) else {
            return reply(StatusCode::BAD_REQUEST, json!({"errors": ["Bad Request"]}));
        };
        if entries.len() > 1000 {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"errors": ["Payload too large"]}),
            );
        }
        let mut events = Vec::new();
        for entry in &entries {
            let message = entry["message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok());
            match message {
                Some(event)
                    if entry["ddsource"] == "intentgate" && entry["service"].is_string() =>
                {
                    events.push(event)
                }
                _ => return reply(StatusCode::BAD_REQUEST, json!({"errors": ["Bad Request"]})),
            }
        }
        if r.poisoned(&events) {
            return reply(StatusCode::BAD_REQUEST, json!({"errors": ["Bad Request"]}));
        }
        r.accept(events);
        reply(StatusCode::ACCEPTED, json!({}))
    }
    serve(Router::new().route("/api/v2/logs", post(logs))).await
}

/// Microsoft Entra ID's token endpoint and the Logs Ingestion API on one server.
pub async fn sentinel() -> Server {
    async fn token(
        State(r): State<Arc<Received>>,
        Path(tenant): Path<String>,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let ok = tenant == AZ_TENANT
            && form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some("app-client-id")
            && form.get("client_secret").map(String::as_str) == Some(AZ_CLIENT_SECRET)
            && form.get("scope").map(String::as_str) == Some("https://monitor.azure.com//.default");
        if !ok {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        r.tokens_issued.fetch_add(1, Ordering::SeqCst);
        reply(
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": AZ_TOKEN}),
        )
    }
    async fn ingest(
        State(r): State<Arc<Received>>,
        Path((dcr, stream)): Path<(String, String)>,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {AZ_TOKEN}"))
        {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"code": "InvalidToken", "message": "The provided access token is invalid"}}),
            );
        }
        if dcr != DCR
            || stream != STREAM
            || query.get("api-version").map(String::as_str) != Some("2023-01-01")
        {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": "NotFound", "message": "Data collection rule or stream not found"}}),
            );
        }
        if r.failing() {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                Json(
                    json!({"error": {"code": "TooManyRequests", "message": "Rate limit exceeded"}}),
                ),
            )
                .into_response();
        }
        let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "InvalidRequestBody", "message": "The request body is not a JSON array"}}),
            );
        };
        if records.iter().any(|r| !r["TimeGenerated"].is_string()) || r.poisoned(&records) {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "InvalidRecord", "message": "A record does not match the stream's schema"}}),
            );
        }
        r.accept(records);
        StatusCode::NO_CONTENT.into_response()
    }
    serve(
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/dataCollectionRules/{dcr}/streams/{stream}", post(ingest)),
    )
    .await
}

/// A webhook receiver that checks the HMAC signature as a receiver should.
pub async fn webhook() -> Server {
    async fn hook(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let timestamp: i64 = header("x-intentgate-timestamp").parse().unwrap_or(0);
        let expected = intentgate_control_plane::delivery::webhook::signature(
            WEBHOOK_SECRET.as_bytes(),
            timestamp,
            &body,
        );
        let now = chrono::Utc::now().timestamp();
        if header("x-intentgate-signature") != expected || (now - timestamp).abs() > 300 {
            return reply(StatusCode::UNAUTHORIZED, json!({"error": "bad signature"}));
        }
        if header("x-intentgate-event") != "audit.events"
            || header("x-intentgate-delivery").len() != 32
        {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "missing headers"}));
        }
        if r.failing() {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "down"}));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "not JSON"}));
        };
        let events = body["events"].as_array().cloned().unwrap_or_default();
        if r.poisoned(&events) {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "refused"}));
        }
        r.accept(events);
        reply(StatusCode::OK, json!({"ok": true}))
    }
    serve(Router::new().route("/hooks/intentgate", post(hook))).await
}
