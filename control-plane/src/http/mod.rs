//! The REST transport (axum): one module per resource, each with its `router()`, translating requests
//! to the domain modules and their errors to responses through the one mapping of [`error`].

mod approvals;
mod attestations;
mod audit;
mod clients;
mod console;
mod discovery;
pub mod error;
pub mod extract;
mod health;
mod keys;
pub mod list;
pub mod metrics;
mod oauth;
mod policies;
mod reports;
mod settings;
pub mod state;
mod tenants;
mod tokens;
mod trust;

use axum::Router;
use serde::Deserialize;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::Error;
pub use list::ListParams;
pub use state::AppState;

/// The whole HTTP surface, ready to serve.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(tokens::router())
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
        .merge(oauth::router())
        .merge(clients::router())
        .merge(trust::router())
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
            metrics::track,
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
