//! `GET /healthz` (checks the database) and `GET /metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> Result<Json<Value>> {
    state.db.ping().await?;
    Ok(Json(
        json!({ "status": "ok", "database": state.db.backend().name() }),
    ))
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let text = state
        .metrics
        .render()
        .map_err(|e| Error::Internal(format!("metrics: {e}")))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
