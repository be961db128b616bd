//! `GET /v1/admin/approvals`, `POST /v1/admin/approvals/{id}/decide`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ListParams;
use super::extract::{Body, Id, Params};
use crate::approvals::{self, DecideRequest, LIST};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/approvals", get(pending))
        .route("/v1/admin/approvals/{id}/decide", post(decide))
}

async fn pending(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Value>> {
    let (scope, page) = params.page(&state, &admin, LIST)?;
    let (items, next) =
        approvals::pending(&state.db, &state.cursors, scope.as_deref(), page).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

async fn decide(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(request): Body<DecideRequest>,
) -> Result<StatusCode> {
    approvals::decide(&recorder, &admin, &id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
