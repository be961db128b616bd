//! Signing keys and the filters that follow the gateway state: `GET /v1/admin/keys`,
//! `POST /v1/admin/keys/rotate`, `DELETE /v1/admin/keys/{kid}`, `GET /v1/admin/filters`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::extract::Segment;
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::filters::registry::{self, FilterStatus};
use crate::http::AppState;
use crate::keys::signing::{self, KeyInfo};
use crate::validate;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/keys", get(list))
        .route("/v1/admin/keys/rotate", post(rotate))
        .route("/v1/admin/keys/{kid}", delete(retire))
        .route("/v1/admin/filters", get(filters_status))
}

async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<KeyInfo>>> {
    signing::list(&state.db).await.map(Json)
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    recorder: Recorder,
) -> Result<Json<KeyInfo>> {
    state.signing.rotate(&recorder, &admin).await.map(Json)
}

async fn retire(
    State(state): State<AppState>,
    admin: Admin,
    recorder: Recorder,
    Segment(kid): Segment,
) -> Result<StatusCode> {
    validate::required_text("kid", &kid, 64).map_err(Error::BadRequest)?;
    state.signing.retire(&recorder, &admin, &kid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct Filters {
    /// The newest state version; a filter that acknowledged it is up to date.
    state_version: u64,
    filters: Vec<FilterStatus>,
}

async fn filters_status(State(state): State<AppState>, admin: Admin) -> Result<Json<Filters>> {
    if !matches!(admin, Admin::Super) {
        return Err(Error::Forbidden(
            "filters are listed with the superadmin token".into(),
        ));
    }
    let mut conn = state.db.pool().acquire().await?;
    let state_version = crate::filters::state::version(&mut conn).await?;
    Ok(Json(Filters {
        state_version,
        filters: registry::list(&state.db).await?,
    }))
}
