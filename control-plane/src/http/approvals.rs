//! `GET /v1/admin/approvals`, `POST /v1/admin/approvals/{id}/decide`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ListParams;
use super::extract::{Body, Id, Params};
use crate::approvals::{self, Approval, DecideRequest, LIST};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/approvals", get(pending))
        .route("/v1/admin/approvals/{id}/decide", post(decide))
}

async fn pending(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Approval>>> {
    let (scope, page) = params.page(&state, &admin, LIST)?;
    approvals::pending(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
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
