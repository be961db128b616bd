//! `GET /v1/admin/tenants` and `GET /v1/admin/integrations`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::auth::Admin;
use crate::error::Result;
use crate::state::AppState;
use crate::tenants::{self, Tenant};

/// The SIEM and webhook destinations the gateway supports. None can be configured yet, so each
/// reports `configured: false`; secrets are never part of this shape.
const DESTINATIONS: [&str; 5] = ["splunk", "datadog", "sentinel", "webhook", "syslog"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", get(list))
        .route("/v1/admin/integrations", get(integrations))
}

async fn list(State(state): State<AppState>, admin: Admin) -> Result<Json<Vec<Tenant>>> {
    tenants::list(&state.db, &state.tokens, &admin)
        .await
        .map(Json)
}

#[derive(Debug, Serialize)]
struct Integration {
    name: &'static str,
    configured: bool,
    endpoint: Option<String>,
    last_flush_ts: Option<String>,
    events_flushed: u64,
    events_dropped: u64,
    last_error: Option<String>,
}

async fn integrations(_admin: Admin) -> Json<Vec<Integration>> {
    Json(
        DESTINATIONS
            .iter()
            .map(|name| Integration {
                name,
                configured: false,
                endpoint: None,
                last_flush_ts: None,
                events_flushed: 0,
                events_dropped: 0,
                last_error: None,
            })
            .collect(),
    )
}
