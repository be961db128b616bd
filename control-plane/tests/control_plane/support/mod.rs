//! Drives the control plane's router in process, on SQLite or on a throwaway Postgres.

pub mod postgres;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use intentgate_control_plane::config::Config;
use intentgate_control_plane::{AppState, app, build};
use serde_json::Value;
use tower::ServiceExt;

pub const SUPER: &str = "super-admin-token-0123456789";
pub const ACME: &str = "acme-admin-token-0123456789";
pub const GLOBEX: &str = "globex-admin-token-0123456789";
/// `INTENTGATE_REPORTS_API_TOKEN` and `INTENTGATE_DISCOVERY_SYNC_TOKEN` of the test apps.
pub const REPORTS: &str = "reports-api-token-0123456789";
pub const SYNC: &str = "discovery-sync-token-0123456789";
/// `INTENTGATE_PUBLIC_URL` of the test apps: the OAuth issuer.
pub const ISSUER: &str = "https://gw.example.com";

/// Runs each listed `async fn(TestApp)` on SQLite and on Postgres.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::TestApp::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::TestApp::postgres().await).await })*
        }
    };
}

pub struct TestApp {
    pub state: AppState,
    router: Router,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}/control-plane.db?mode=rwc",
            dir.path().display()
        );
        Self::start(url, Some(dir)).await
    }

    pub async fn postgres() -> Self {
        Self::start(postgres::database().await, None).await
    }

    /// A control plane on the Postgres `primary` whose audit reads go to the read replica `replica`.
    pub async fn with_read_replica(primary: String, replica: String) -> Self {
        Self::start_with(primary, None, &[("INTENTGATE_READ_DATABASE_URL", replica)]).await
    }

    /// A control plane on the database at `url`, migrated as it connects; `dir` holds a SQLite
    /// file and is kept as long as the app.
    pub async fn start(url: String, dir: Option<tempfile::TempDir>) -> Self {
        Self::start_with(url, dir, &[]).await
    }

    async fn start_with(
        url: String,
        dir: Option<tempfile::TempDir>,
        more: &[(&str, String)],
    ) -> Self {
        let tenant_tokens = format!("acme:{ACME},globex:{GLOBEX}");
        let config = Config::from_lookup(|name| match name {
            "INTENTGATE_ADMIN_TOKEN" => Some(SUPER.into()),
            "INTENTGATE_TENANT_ADMIN_TOKENS" => Some(tenant_tokens.clone()),
            "INTENTGATE_DATABASE_URL" => Some(url.clone()),
            "INTENTGATE_REPORTS_API_TOKEN" => Some(REPORTS.into()),
            "INTENTGATE_DISCOVERY_SYNC_TOKEN" => Some(SYNC.into()),
            "INTENTGATE_PUBLIC_URL" => Some(ISSUER.into()),
            _ => more
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone()),
        })
        .expect("test config");
        let state = build(&config).await.expect("control plane starts");
        TestApp {
            router: app(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// Appends an acme and a globex event per step from four concurrent tasks, half of them through a
    /// second connection to the same database, as another replica would; task `t` appends events
    /// `t * 100 .. t * 100 + steps`.
    pub async fn append_from_two_replicas(
        &self,
        steps: usize,
        event: fn(&str, usize) -> intentgate_core::audit::AuditEvent,
    ) {
        let replica = intentgate_control_plane::store::Db::connect(self.state.db.url())
            .await
            .expect("second connection");
        let mut tasks = Vec::new();
        for task in 0..4usize {
            let db = if task % 2 == 0 {
                self.state.db.clone()
            } else {
                replica.clone()
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..steps {
                    let n = task * 100 + i;
                    intentgate_control_plane::audit::append(
                        &db,
                        &[event("acme", n), event("globex", n)],
                    )
                    .await
                    .expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("append task");
        }
    }

    /// Sends a request and returns the status and the body (JSON, else a string, else null).
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let raw = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, bytes) = self.send(method, uri, token, raw).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// Sends raw bytes as the body and returns the raw response body.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        self.send_with(method, uri, token, &[], body).await
    }

    /// A superadmin request with extra headers (raw bytes, so that malformed ones can be sent);
    /// returns the status and the JSON body (null when empty).
    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &[u8])],
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let raw = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, bytes) = self.send_with(method, uri, Some(SUPER), headers, raw).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (status, value)
    }

    async fn send_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &[u8])],
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            let value = header::HeaderValue::from_bytes(value).expect("a header value");
            request = request.header(*name, value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, bytes.to_vec())
    }

    /// The router's whole answer to a request, headers included.
    pub async fn answer(&self, request: Request<Body>) -> axum::response::Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers")
    }

    /// Sends a request as built, and returns the status, the headers and the raw body.
    pub async fn request(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let (parts, body) = self.answer(request).await.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, parts.headers, bytes.to_vec())
    }

    pub async fn get(&self, token: &str, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(token), None).await
    }

    pub async fn post(&self, token: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(token), Some(&body)).await
    }

    pub async fn put(&self, token: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("PUT", uri, Some(token), Some(&body)).await
    }

    pub async fn delete(&self, token: &str, uri: &str) -> (StatusCode, Value) {
        self.call("DELETE", uri, Some(token), None).await
    }

    /// Mints a token for `tenant` as the superadmin and returns its jti.
    pub async fn mint(&self, tenant: &str, subject: &str) -> String {
        let (status, body) = self
            .post(
                SUPER,
                "/v1/admin/mint",
                serde_json::json!({"subject": subject, "tenant": tenant}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["jti"].as_str().expect("jti").to_owned()
    }

    /// Creates a draft for `tenant` and returns its id.
    pub async fn draft(&self, tenant: &str, name: &str, rego: &str) -> String {
        let (status, body) = self
            .post(
                SUPER,
                "/v1/admin/policies/drafts",
                serde_json::json!({"name": name, "tenant": tenant, "rego_source": rego}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// The tenant's chain as `GET /v1/admin/audit/verify` reports it (asserting it answered).
    pub async fn verify(&self, tenant: &str) -> Value {
        let (status, report) = self
            .get(SUPER, &format!("/v1/admin/audit/verify?tenant={tenant}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report
    }

    /// The tenant's audit events, newest first.
    pub async fn events(&self, tenant: &str) -> Vec<Value> {
        let (status, body) = self
            .get(
                SUPER,
                &format!("/v1/admin/audit?tenant={tenant}&limit=1000"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().expect("items").clone()
    }
}

/// A tool call of `agent-1` to `read_invoice`, as a filter records it.
pub fn tool_call(
    id: String,
    tenant: &str,
    ts_ms: i64,
    decision: intentgate_core::decision::AuditDecision,
) -> intentgate_core::audit::AuditEvent {
    let mut e = intentgate_core::audit::AuditEvent::new(
        id,
        ts_ms,
        intentgate_core::audit::EventKind::ToolCall,
        decision,
    );
    e.tenant = tenant.into();
    e.agent_id = "agent-1".into();
    e.tool = "read_invoice".into();
    e
}

/// An `IngestAudit` batch from the filter `filter`, carrying `events`.
pub fn audit_batch(
    filter: &str,
    events: impl IntoIterator<Item = intentgate_core::audit::AuditEvent>,
) -> intentgate_proto::v1::AuditBatch {
    intentgate_proto::v1::AuditBatch {
        filter_id: filter.into(),
        events: events
            .into_iter()
            .map(|e| intentgate_proto::v1::AuditRecord {
                event_json: serde_json::to_string(&e).expect("event JSON"),
                id: e.id,
                tenant: e.tenant,
            })
            .collect(),
        dropped: 0,
    }
}

/// A policy that allows everything except `transfer_funds`, naming its rules.
pub const POLICY: &str = r#"package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "no rule matched", "rule": "default"}

decision := {"allow": true, "rule": "reads"} if {
    input.tool != "transfer_funds"
}
"#;

/// Denies everything.
pub const DENY_ALL: &str = r#"package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "locked down", "rule": "lockdown"}
"#;
