//! `/v1/admin/policies/*`: drafts, the active pointer, its promotion history, rollback and dry-run.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{Body, Id, Params};
use super::{ListParams, TenantParam, list};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::policies::active::{self, Active, PromoteRequest, Promotion};
use crate::policies::drafts::{self, Draft, DraftUpdate, NewDraft};
use crate::policies::dry_run::{self, DryRun, DryRunRequest};
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/policies/drafts",
            get(list_drafts).post(create_draft),
        )
        .route(
            "/v1/admin/policies/drafts/{id}",
            get(get_draft).put(update_draft).delete(delete_draft),
        )
        .route(
            "/v1/admin/policies/active",
            get(get_active).post(promote).delete(clear),
        )
        .route("/v1/admin/policies/history", get(history))
        .route("/v1/admin/policies/rollback", post(rollback))
        .route("/v1/admin/policies/dry-run", post(dry_run))
}

async fn list_drafts(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<TenantParam>,
) -> Result<Json<Vec<Draft>>> {
    let scope = admin.scope(params.tenant.as_deref())?;
    drafts::list(&state.db, scope.as_deref()).await.map(Json)
}

async fn create_draft(
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewDraft>,
) -> Result<(StatusCode, Json<Draft>)> {
    let draft = drafts::create(&recorder, &admin, new).await?;
    Ok((StatusCode::CREATED, Json(draft)))
}

async fn get_draft(State(state): State<AppState>, admin: Admin, Id(id): Id) -> Result<Json<Draft>> {
    drafts::get(&state.db, &admin, &id).await.map(Json)
}

async fn update_draft(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(change): Body<DraftUpdate>,
) -> Result<Json<Draft>> {
    drafts::update(&recorder, &admin, &id, change)
        .await
        .map(Json)
}

async fn delete_draft(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<StatusCode> {
    drafts::delete(&recorder, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_active(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<TenantParam>,
) -> Result<Json<Active>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    active::get(&state.db, &tenant).await.map(Json)
}

async fn promote(
    admin: Admin,
    recorder: Recorder,
    Body(request): Body<PromoteRequest>,
) -> Result<Json<Active>> {
    active::promote(&recorder, &admin, request).await.map(Json)
}

async fn clear(
    admin: Admin,
    recorder: Recorder,
    Params(params): Params<TenantParam>,
) -> Result<StatusCode> {
    let tenant = admin.tenant_for_change(params.tenant.as_deref())?;
    active::clear(&recorder, &admin, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn history(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Promotion>>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    let page = list::page(
        &state,
        active::HISTORY,
        &tenant,
        params.limit.as_deref(),
        params.cursor.as_deref(),
    )?;
    active::history(&state.db, &tenant, page).await.map(Json)
}

async fn rollback(
    admin: Admin,
    recorder: Recorder,
    Params(params): Params<TenantParam>,
) -> Result<Json<Active>> {
    let tenant = admin.tenant_for_change(params.tenant.as_deref())?;
    active::rollback(&recorder, &admin, &tenant).await.map(Json)
}

async fn dry_run(
    State(state): State<AppState>,
    admin: Admin,
    Body(mut request): Body<DryRunRequest>,
) -> Result<Json<DryRun>> {
    let subject = request.subject()?;
    let tenant = admin.tenant(request.tenant.as_deref())?;
    dry_run::run(&state.db, &tenant, &request.rego_source, subject)
        .await
        .map(Json)
}
