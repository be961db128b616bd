//! `POST /v1/admin/mint`, `POST /v1/admin/revoke`, `GET /v1/admin/revocations`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ListParams;
use super::extract::{Body, Params};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::store::page::Paged;
use crate::tokens::{self, MintRequest, Minted, REVOCATIONS, Revocation, RevokeRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/mint", post(mint))
        .route("/v1/admin/revoke", post(revoke))
        .route("/v1/admin/revocations", get(revocations))
}

async fn mint(
    State(state): State<AppState>,
    admin: Admin,
    recorder: Recorder,
    Body(request): Body<MintRequest>,
) -> Result<Json<Minted>> {
    tokens::mint_token(&recorder, &state.signing.active(), &admin, request)
        .await
        .map(Json)
}

async fn revoke(
    admin: Admin,
    recorder: Recorder,
    Body(request): Body<RevokeRequest>,
) -> Result<StatusCode> {
    tokens::revoke(&recorder, &admin, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revocations(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Revocation>>> {
    let (scope, page) = params.page(&state, &admin, REVOCATIONS)?;
    tokens::revocations(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}
