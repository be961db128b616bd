//! `GET /v1/admin/audit`, `/audit/verify` and `/audit/export`; the Merkle tree's endpoints are in
//! [`tree`].

mod tree;

use axum::body::Body as ResponseBody;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::extract::Params;
use super::{TenantParam, list};
use crate::audit::export::{self, Format};
use crate::audit::query::{self, FilterParams, Filters};
use crate::audit::verify::{self, Report};
use crate::auth::Admin;
use crate::error::Result;
use crate::http::AppState;
use crate::store::page::Paged;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/audit", get(list))
        .route("/v1/admin/audit/verify", get(verify_chain))
        .route("/v1/admin/audit/export", get(export_events))
        .merge(tree::router())
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    decision: Option<String>,
    tool: Option<String>,
    subject: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditParams {
    fn filters(&self, admin: &Admin) -> Result<Filters> {
        let tenant = admin.scope(self.tenant.as_deref())?;
        Filters::parse(
            tenant,
            FilterParams {
                since: self.since.as_deref(),
                until: self.until.as_deref(),
                decision: self.decision.as_deref(),
                tool: self.tool.as_deref(),
                subject: self.subject.as_deref(),
            },
        )
    }
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<AuditParams>,
) -> Result<Json<Paged<Box<RawValue>>>> {
    let filters = params.filters(&admin)?;
    let page = list::page(
        &state,
        query::LIST,
        filters.scope(),
        params.limit.as_deref(),
        params.cursor.as_deref(),
    )?;
    query::list(&state.db, &filters, page).await.map(Json)
}

async fn verify_chain(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<TenantParam>,
) -> Result<Json<Report>> {
    let tenant = admin.tenant(params.tenant.as_deref())?;
    let report = verify::verify(&state.db, state.keys.issuer(), &tenant).await?;
    tracing::info!(
        %tenant,
        verified = report.verified,
        events = report.events_checked,
        duration_ms = report.duration_ms,
        "audit chain verified"
    );
    Ok(Json(report))
}

async fn export_events(
    State(state): State<AppState>,
    admin: Admin,
    Params(params): Params<AuditParams>,
) -> Result<Response> {
    let format = Format::parse(params.format.as_deref())?;
    let filters = params.filters(&admin)?;
    let extension = match format {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
    };
    let body = ResponseBody::from_stream(export::stream(state.db.clone(), filters, format));
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit.{extension}\""),
            ),
        ],
        body,
    )
        .into_response())
}
