//! `GET /api/reports/{type}` (`INTENTGATE_REPORTS_API_TOKEN`): `?format=csv` for a flat file,
//! JSON by default; `?tenant=` to scope; `?since=`/`?until=` set the activity window.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{Params, Segment, bearer};
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
    auth::require(
        state.discovery.reports_token.as_ref(),
        "INTENTGATE_REPORTS_API_TOKEN",
        bearer(&headers),
    )?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        Error::not_found("no such report (posture, access, attestation or activity)")
    })?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::bad_request("format must be json or csv")),
    };
    if let Some(tenant) = params.tenant.as_deref() {
        validate::tenant(tenant).map_err(Error::BadRequest)?;
    }
    let window = Window::parse(params.since.as_deref(), params.until.as_deref())?;
    let report = reports::build(&state.db, kind, params.tenant.as_deref(), &window).await?;
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
