//! Discovery: sources and the inventory under `/v1/admin/discovery/*` (admin tokens), and the
//! server-to-server `POST /api/discovery/ingest` (a source's token) and `POST /api/discovery/sync`
//! (`INTENTGATE_DISCOVERY_SYNC_TOKEN`).

use axum::body::Body as RequestBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Id, Params, bearer};
use super::{ListParams, TenantParam};
use crate::audit::Recorder;
use crate::auth::{self, Admin};
use crate::discovery::import::{self, Imported};
use crate::discovery::inventory::{self, Agent, AgentUpdate};
use crate::discovery::pull::{self, SyncReport};
use crate::discovery::sources::{self, Created, NewSource, Source, SourceUpdate};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::store::page::Paged;

/// Largest push accepted by the ingest endpoint.
pub const MAX_INGEST_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/discovery/sources",
            get(list_sources).post(create_source),
        )
        .route(
            "/v1/admin/discovery/sources/{id}",
            get(get_source).put(update_source).delete(delete_source),
        )
        .route("/v1/admin/discovery/sources/{id}/token", post(rotate_token))
        .route("/v1/admin/discovery/agents", get(list_agents))
        .route(
            "/v1/admin/discovery/agents/{id}",
            get(get_agent).put(update_agent),
        )
        .route("/api/discovery/ingest", post(ingest))
        .route("/api/discovery/sync", post(sync))
}

async fn list_sources(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Source>>> {
    let (scope, page) = params.page(&state, &admin, sources::LIST)?;
    sources::list(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}

async fn create_source(
    State(state): State<AppState>,
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewSource>,
) -> Result<(StatusCode, Json<Created>)> {
    let created = sources::create(&recorder, state.keys.seed(), &admin, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn get_source(
    State(state): State<AppState>,
    admin: Admin,
    Id(id): Id,
) -> Result<Json<Source>> {
    sources::get(&state.db, &admin, &id).await.map(Json)
}

async fn update_source(
    State(state): State<AppState>,
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(change): Body<SourceUpdate>,
) -> Result<Json<Source>> {
    sources::update(&recorder, state.keys.seed(), &admin, &id, change)
        .await
        .map(Json)
}

async fn delete_source(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<StatusCode> {
    sources::delete(&recorder, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_token(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<Json<Value>> {
    let token = sources::rotate_token(&recorder, &admin, &id).await?;
    Ok(Json(json!({ "id": id, "token": token })))
}

#[derive(Debug, Deserialize)]
struct AgentParams {
    #[serde(flatten)]
    list: ListParams,
    governed: Option<String>,
}

async fn list_agents(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<AgentParams>,
) -> Result<Json<Paged<Agent>>> {
    let governed = match params.governed.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(Error::bad_request("governed must be true or false")),
    };
    let filter = format!("{governed:?}");
    let (scope, page) =
        params
            .list
            .filtered_page(&state, &admin, inventory::LIST, Some(&filter))?;
    inventory::list(&state.db, scope.as_deref(), governed, page)
        .await
        .map(Json)
}

async fn get_agent(
    State(state): State<AppState>,
    admin: Admin,
    Id(name): Id,
    Params(params): Params<TenantParam>,
) -> Result<Json<Agent>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    inventory::get(&state.db, &tenant, &name).await.map(Json)
}

async fn update_agent(
    admin: Admin,
    recorder: Recorder,
    Id(name): Id,
    Body(change): Body<AgentUpdate>,
) -> Result<Json<Agent>> {
    inventory::update(&recorder, &admin, &name, change)
        .await
        .map(Json)
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<Json<Imported>> {
    let source = sources::authenticate(&state.db, bearer(&headers)).await?;
    let bytes = axum::body::to_bytes(body, MAX_INGEST_BYTES)
        .await
        .map_err(|_| {
            Error::bad_request(format!(
                "request body exceeds {MAX_INGEST_BYTES} bytes or could not be read"
            ))
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
    let records = import::body_records(value).map_err(Error::BadRequest)?;
    let report = import::import(
        &state.db,
        &state.discovery.catalog,
        &source.tenant,
        &source.id,
        source.vendor,
        &records,
    )
    .await?;
    sources::record_activity(
        &state.db,
        &source.id,
        report.received,
        report.imported,
        None,
    )
    .await?;
    tracing::info!(
        source = %source.id,
        tenant = %source.tenant,
        received = report.received,
        imported = report.imported,
        malformed = report.malformed,
        "discovery batch ingested"
    );
    Ok(Json(report))
}

async fn sync(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SyncReport>> {
    auth::require(
        state.discovery.sync_token.as_ref(),
        "INTENTGATE_DISCOVERY_SYNC_TOKEN",
        bearer(&headers),
    )?;
    let clients = pull::clients()?;
    let report = pull::sync(
        &state.db,
        &clients,
        &state.discovery.catalog,
        state.keys.seed(),
    )
    .await?;
    tracing::info!(
        polled = report.polled,
        imported = report.imported,
        "discovery sync ran"
    );
    Ok(Json(report))
}
