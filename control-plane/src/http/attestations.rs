//! Attestation campaigns under `/v1/admin/attestations`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ListParams;
use super::extract::{Body, Id, Params};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::discovery::attestation::{self, Campaign, LIST, NewCampaign, Response};
use crate::error::Result;
use crate::http::AppState;
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/attestations", get(list).post(create))
        .route("/v1/admin/attestations/{id}", get(get_one))
        .route("/v1/admin/attestations/{id}/responses", post(respond))
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Campaign>>> {
    let (scope, page) = params.page(&state, &admin, LIST)?;
    attestation::list(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}

async fn create(
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>)> {
    let campaign = attestation::create(&recorder, &admin, new).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

async fn get_one(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
) -> Result<Json<Campaign>> {
    attestation::get(&state.db, &admin, &id).await.map(Json)
}

async fn respond(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(response): Body<Response>,
) -> Result<Json<Campaign>> {
    attestation::respond(&recorder, &admin, &id, response)
        .await
        .map(Json)
}
