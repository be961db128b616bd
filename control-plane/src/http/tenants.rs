//! `GET /v1/admin/tenants` and `GET /v1/admin/integrations`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::Admin;
use crate::delivery::Integration;
use crate::error::Result;
use crate::filters::registry;
use crate::http::AppState;
use crate::tenants::{self, Tenant};

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

/// Every supported destination, configured or not, with its delivery counters and lag (gateway-wide:
/// destinations receive every tenant's events), then the filters' audit ingest with what their
/// buffers dropped. Secrets are never part of this shape.
/// A destination's `last_error` can quote what it answered (a receiver may echo events of any
/// tenant), so a per-tenant admin sees only that delivery is failing.
async fn integrations(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<Integration>>> {
    let mut out = state.delivery.report(&state.db).await?;
    if matches!(admin, Admin::Tenant(_)) {
        for integration in &mut out {
            if integration.last_error.is_some() {
                integration.last_error = Some(REDACTED_ERROR.into());
            }
        }
    }
    out.push(registry::audit_ingest(&state.db).await?);
    Ok(Json(out))
}

const REDACTED_ERROR: &str = "delivery is failing; the superadmin token shows the error";
