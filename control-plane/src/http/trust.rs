//! `/v1/admin/trusted-issuers` and `/v1/admin/exchange-rules`: the JWT issuers a tenant trusts and
//! the rules that map their JWTs to capability tokens at the token endpoint (admin tokens, per
//! tenant; every change audited).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::ListParams;
use super::extract::{Body, Id, Params};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::oauth::issuers::{self, IssuerUpdate, NewIssuer, TrustedIssuer};
use crate::oauth::rules::{self, NewRule, Rule, RuleUpdate};
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/trusted-issuers",
            get(list_issuers).post(create_issuer),
        )
        .route(
            "/v1/admin/trusted-issuers/{id}",
            get(show_issuer).put(update_issuer).delete(remove_issuer),
        )
        .route(
            "/v1/admin/exchange-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/v1/admin/exchange-rules/{id}",
            get(show_rule).put(update_rule).delete(remove_rule),
        )
}

async fn list_issuers(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<TrustedIssuer>>> {
    let (scope, page) = params.page(&state, &admin, issuers::LIST)?;
    issuers::TABLE
        .list(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}

async fn create_issuer(
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewIssuer>,
) -> Result<(StatusCode, Json<TrustedIssuer>)> {
    let created = issuers::create(&recorder, &admin, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn show_issuer(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
) -> Result<Json<TrustedIssuer>> {
    issuers::TABLE.get(&state.db, &admin, &id).await.map(Json)
}

async fn update_issuer(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(change): Body<IssuerUpdate>,
) -> Result<Json<TrustedIssuer>> {
    issuers::update(&recorder, &admin, &id, change)
        .await
        .map(Json)
}

async fn remove_issuer(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<StatusCode> {
    issuers::delete(&recorder, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_rules(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Rule>>> {
    let (scope, page) = params.page(&state, &admin, rules::LIST)?;
    rules::TABLE
        .list(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}

async fn create_rule(
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewRule>,
) -> Result<(StatusCode, Json<Rule>)> {
    let created = rules::create(&recorder, &admin, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn show_rule(State(state): State<AppState>, admin: Admin, Id(id): Id) -> Result<Json<Rule>> {
    rules::TABLE.get(&state.db, &admin, &id).await.map(Json)
}

async fn update_rule(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(change): Body<RuleUpdate>,
) -> Result<Json<Rule>> {
    rules::update(&recorder, &admin, &id, change)
        .await
        .map(Json)
}

async fn remove_rule(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<StatusCode> {
    rules::delete(&recorder, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
