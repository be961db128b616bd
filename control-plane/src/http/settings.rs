//! `GET` and `PUT /v1/admin/tenants/{tenant}/settings`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::extract::{Body, Segment};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::tenants::settings::{self, Settings, Update};
use crate::validate;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/admin/tenants/{tenant}/settings",
        get(read).put(replace),
    )
}

/// The path's tenant, which a per-tenant admin may only name as its own (another is 404).
fn tenant_of(admin: &Admin, tenant: &str) -> Result<String> {
    validate::tenant(tenant).map_err(Error::BadRequest)?;
    if !admin.may_access(tenant) {
        return Err(Error::not_found(format!("no tenant {tenant}")));
    }
    Ok(tenant.to_owned())
}

async fn read(
    State(state): State<AppState>,
    admin: Admin,
    Segment(tenant): Segment,
) -> Result<Json<Settings>> {
    let tenant = tenant_of(&admin, &tenant)?;
    settings::get(&state.db, &tenant).await.map(Json)
}

async fn replace(
    admin: Admin,
    recorder: Recorder,
    Segment(tenant): Segment,
    Body(update): Body<Update>,
) -> Result<Json<Settings>> {
    let tenant = tenant_of(&admin, &tenant)?;
    validate::assignable_tenant(&tenant).map_err(Error::BadRequest)?;
    settings::put(&recorder, &admin, &tenant, update)
        .await
        .map(Json)
}
