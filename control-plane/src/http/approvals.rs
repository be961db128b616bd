//! `GET /v1/admin/approvals`, `POST /v1/admin/approvals/{id}/decide`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ListParams;
use super::extract::{Body, Id, Params};
use serde::Deserialize;

use crate::approvals::{self, Approval, DecideRequest, Filter, LIST};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/approvals", get(list))
        .route("/v1/admin/approvals/{id}/decide", post(decide))
}

#[derive(Debug, Deserialize)]
struct ApprovalParams {
    #[serde(flatten)]
    list: ListParams,
    status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ApprovalParams>,
) -> Result<Json<Paged<Approval>>> {
    let filter = Filter::parse(params.status.as_deref())?;
    let (scope, page) = params
        .list
        .filtered_page(&state, &admin, LIST, Some(filter.key()))?;
    approvals::list(&state.db, scope.as_deref(), filter, page)
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
