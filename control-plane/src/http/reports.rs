//! `GET /api/reports/{type}`: `?format=csv` for a flat file, JSON by default; `?tenant=` to scope;
//! `?since=`/`?until=` set the activity window. Read with `INTENTGATE_REPORTS_API_TOKEN` (every
//! tenant, or the one named) or with an admin token, scoped as the admin lists are: the superadmin
//! sees every tenant or the one it names, a per-tenant admin only its own.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{Params, Segment, bearer};
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::reports::{self, Kind, Window};
use crate::{auth, validate};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/reports/{kind}", get(report))
}

#[derive(Debug, Deserialize)]
struct ReportParams {
    format: Option<String>,
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Segment(kind): Segment,
    Params(params): Params<ReportParams>,
) -> Result<Response> {
    let scope = scope(&state, &headers, params.tenant.as_deref())?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        Error::not_found("no such report (posture, access, attestation or activity)")
    })?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::bad_request("format must be json or csv")),
    };
    let window = Window::parse(params.since.as_deref(), params.until.as_deref())?;
    let report = reports::build(&state.reads, kind, scope.as_deref(), &window).await?;
    if csv {
        Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.csv\"", kind.as_str()),
                ),
            ],
            reports::csv(&report.table),
        )
            .into_response())
    } else {
        Ok(Json(report.json).into_response())
    }
}

/// The tenants a report covers (`None`: all), from whoever asks: an admin token is scoped like the
/// admin lists; otherwise the reports token must match, and reads any tenant.
fn scope(state: &AppState, headers: &HeaderMap, requested: Option<&str>) -> Result<Option<String>> {
    let presented = bearer(headers);
    let admin: Option<Admin> = presented.and_then(|token| state.tokens.authenticate(token));
    if let Some(admin) = admin {
        return admin.scope(requested);
    }
    auth::require(
        state.discovery.reports_token.as_ref(),
        "INTENTGATE_REPORTS_API_TOKEN",
        presented,
    )?;
    if let Some(tenant) = requested {
        validate::tenant(tenant).map_err(Error::BadRequest)?;
    }
    Ok(requested.map(str::to_owned))
}
