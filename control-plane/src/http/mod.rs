//! The admin REST API: one module per resource, each with its `router()`.

mod approvals;
mod attestations;
mod audit;
mod capabilities;
mod console;
mod discovery;
pub mod error;
pub mod extract;
mod health;
mod keys;
mod policies;
mod reports;
mod settings;
mod tenants;

use axum::Router;
use serde::Deserialize;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::Admin;
use crate::cursor::Page;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The whole HTTP surface, ready to serve.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(capabilities::router())
        .merge(policies::router())
        .merge(audit::router())
        .merge(approvals::router())
        .merge(tenants::router())
        .merge(health::router())
        .merge(keys::router())
        .merge(settings::router())
        .merge(discovery::router())
        .merge(attestations::router())
        .merge(reports::router())
        .merge(console::router())
        .fallback(|| async { Error::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(serde_json::json!({ "error": "method not allowed" })),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        // Admin traffic is low-volume and worth a log line per request.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// `?tenant=`: a superadmin's choice of tenant; ignored for per-tenant admins.
#[derive(Debug, Deserialize)]
pub struct TenantParam {
    pub tenant: Option<String>,
}

/// `?tenant=&limit=&cursor=` of the paginated lists.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub tenant: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListParams {
    /// The tenant scope (`None`: all tenants) and the page requested within it.
    pub fn page(
        &self,
        state: &AppState,
        admin: &Admin,
        list: &str,
    ) -> Result<(Option<String>, Page)> {
        let scope = admin.scope(self.tenant.as_deref())?;
        let page = Page::parse(
            &state.cursors,
            list,
            scope.as_deref().unwrap_or("*"),
            self.limit.as_deref(),
            self.cursor.as_deref(),
        )?;
        Ok((scope, page))
    }
}
