//! The Merkle tree's endpoints: `/v1/admin/audit/tree-head` (latest signed head; POST signs one
//! now), `/v1/admin/audit/proofs/inclusion` and `/v1/admin/audit/proofs/consistency`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use intentgate_core::audit::merkle::{ConsistencyProof, InclusionProof, SignedTreeHead};
use serde::Deserialize;

use crate::audit::tree::{self, proofs};
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::TenantParam;
use crate::http::extract::Params;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/audit/tree-head", get(latest).post(sign_now))
        .route("/v1/admin/audit/proofs/inclusion", get(inclusion))
        .route("/v1/admin/audit/proofs/consistency", get(consistency))
}

async fn latest(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<TenantParam>,
) -> Result<Json<SignedTreeHead>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    tree::latest(&state.db, &tenant, None)
        .await?
        .map(Json)
        .ok_or_else(|| Error::not_found("no signed tree head has been issued for this tenant yet"))
}

async fn sign_now(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<TenantParam>,
) -> Result<(StatusCode, Json<SignedTreeHead>)> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    let sth = tree::issue(&state.db, state.keys.issuer(), &tenant).await?;
    Ok((StatusCode::CREATED, Json(sth)))
}

#[derive(Debug, Deserialize)]
struct InclusionParams {
    tenant: Option<String>,
    event_id: Option<String>,
    tree_size: Option<String>,
}

async fn inclusion(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<InclusionParams>,
) -> Result<Json<InclusionProof>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    let event_id = params
        .event_id
        .ok_or_else(|| Error::bad_request("event_id is required"))?;
    crate::validate::id("event_id", &event_id).map_err(Error::BadRequest)?;
    let tree_size = size_param("tree_size", params.tree_size.as_deref())?;
    proofs::inclusion(&state.db, &state.tree_nodes, &tenant, &event_id, tree_size)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize)]
struct ConsistencyParams {
    tenant: Option<String>,
    first: Option<String>,
    second: Option<String>,
}

async fn consistency(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ConsistencyParams>,
) -> Result<Json<ConsistencyProof>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    let first = size_param("first", params.first.as_deref())?
        .ok_or_else(|| Error::bad_request("first is required"))?;
    let second = size_param("second", params.second.as_deref())?;
    proofs::consistency(&state.db, &state.tree_nodes, &tenant, first, second)
        .await
        .map(Json)
}

/// A tree size: a non-negative integer in decimal.
fn size_param(name: &str, text: Option<&str>) -> Result<Option<u64>> {
    text.map(|t| {
        t.parse::<u64>()
            .ok()
            .filter(|n| i64::try_from(*n).is_ok())
            .ok_or_else(|| Error::bad_request(format!("{name} must be a non-negative integer")))
    })
    .transpose()
}
