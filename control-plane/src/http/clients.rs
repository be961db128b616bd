//! `/v1/admin/clients`: the token endpoint's agent clients (admin tokens, per tenant; every change
//! audited). Creating a secret client, or rotating its secret (`POST …/{id}/secret`), shows the
//! secret once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ListParams;
use super::extract::{Body, Id, Params};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::oauth::clients::{self, Client, ClientUpdate, Created, NewClient};
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/clients", get(list).post(create))
        .route(
            "/v1/admin/clients/{id}",
            get(show).put(update).delete(remove),
        )
        .route("/v1/admin/clients/{id}/secret", post(rotate_secret))
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<ListParams>,
) -> Result<Json<Paged<Client>>> {
    let (scope, page) = params.page(&state, &admin, clients::LIST)?;
    clients::TABLE
        .list(&state.db, scope.as_deref(), page)
        .await
        .map(Json)
}

async fn create(
    admin: Admin,
    recorder: Recorder,
    Body(new): Body<NewClient>,
) -> Result<(StatusCode, Json<Created>)> {
    let created = clients::create(&recorder, &admin, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn show(State(state): State<AppState>, admin: Admin, Id(id): Id) -> Result<Json<Client>> {
    clients::TABLE.get(&state.db, &admin, &id).await.map(Json)
}

async fn update(
    admin: Admin,
    recorder: Recorder,
    Id(id): Id,
    Body(change): Body<ClientUpdate>,
) -> Result<Json<Client>> {
    clients::update(&recorder, &admin, &id, change)
        .await
        .map(Json)
}

async fn remove(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<StatusCode> {
    clients::delete(&recorder, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(admin: Admin, recorder: Recorder, Id(id): Id) -> Result<Json<Value>> {
    let secret = clients::rotate_secret(&recorder, &admin, &id).await?;
    Ok(Json(json!({ "client_id": id, "client_secret": secret })))
}
