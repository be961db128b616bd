//! IntentGate control plane: the admin REST API over SQLite or Postgres (SPEC §2, §4–6).
//!
//! [`app`] builds the router so tests drive it in process; [`serve`] runs it until SIGTERM/SIGINT.
//! Domain modules (`tokens`, `policies`, `audit`, `approvals`, `tenants`) hold the logic and SQL;
//! `http` only maps requests to them and errors to responses.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod config;
pub mod cursor;
pub mod db;
pub mod discovery;
pub mod error;
pub mod http;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod policies;
pub mod reports;
pub mod service_token;
pub mod state;
pub mod tenants;
pub mod time;
pub mod tokens;
pub mod validate;

pub use http::app;
pub use state::AppState;

use anyhow::Context as _;

use crate::auth::AdminTokens;
use crate::config::Config;
use crate::db::Db;

/// Connects to the database (applying migrations) and resolves the master key.
pub async fn build(config: &Config) -> anyhow::Result<AppState> {
    let db = Db::connect(&config.database_url)
        .await
        .context("cannot open the database (INTENTGATE_DATABASE_URL)")?;
    let keys = keys::resolve(&db, config.master_seed.as_ref())
        .await
        .context("cannot load the master key")?;
    tracing::info!(
        backend = db.backend().name(),
        kid = keys.issuer().kid(),
        "control plane ready"
    );
    Ok(AppState::new(db, keys, AdminTokens::from_config(config)).with_discovery(config.discovery.clone()))
}

/// Serves the API on `config.http_addr` until SIGTERM or SIGINT, then drains and closes.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (INTENTGATE_HTTP_ADDR)",
                config.http_addr
            )
        })?;
    tracing::info!(addr = %config.http_addr, "listening");
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
