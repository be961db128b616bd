//! IntentGate control plane: the admin REST API and filter sync over SQLite or Postgres (SPEC §2,
//! §4–6), in layers, each using only its own or lower ones (`tests/layout.rs` checks it):
//!
//! - transports only translate: [`http`] (REST) and [`grpc`] (filter sync);
//! - domain modules own their rules and SQL: [`tokens`], [`oauth`], [`policies`], [`approvals`],
//!   [`audit`], [`delivery`], [`discovery`], [`reports`], [`tenants`], [`keys`], [`filters`],
//!   [`auth`];
//!   every change goes through [`audit::Recorder`]'s audited change;
//! - the [`store`]: the pool, migrations, write transactions, the state-version log, list paging;
//! - shared: [`error`], [`ids`], [`time`], [`validate`]; [`config`] reads the environment once.
//!
//! [`app`] builds the router so tests drive it in process; [`serve`] runs both servers until
//! SIGTERM/SIGINT.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod config;
pub mod delivery;
pub mod discovery;
pub mod error;
pub mod filters;
pub mod grpc;
pub mod http;
pub mod ids;
pub mod keys;
pub mod oauth;
pub mod policies;
pub mod reports;
pub mod store;
pub mod tenants;
pub mod time;
pub mod tokens;
pub mod validate;

pub use http::AppState;
pub use http::app;

use anyhow::Context as _;

use crate::auth::AdminTokens;
use crate::config::Config;
use crate::store::Db;

/// Connects to the database (applying migrations) and resolves the master key.
pub async fn build(config: &Config) -> anyhow::Result<AppState> {
    let db = Db::connect(&config.database_url)
        .await
        .context("cannot open the database (INTENTGATE_DATABASE_URL)")?;
    let reads = match &config.read_database_url {
        Some(url) => Db::connect_replica(url)
            .await
            .context("cannot open the read replica (INTENTGATE_READ_DATABASE_URL)")?,
        None => db.clone(),
    };
    let keys = keys::resolve(&db, config.master_seed.as_ref())
        .await
        .context("cannot load the master key")?;
    let signing = keys::SigningKeys::load(&db, &keys)
        .await
        .context("cannot load the signing keys")?;
    tracing::info!(
        backend = db.backend().name(),
        kid = signing.active().kid(),
        "control plane ready"
    );
    Ok(AppState::new(
        db,
        keys,
        signing,
        AdminTokens::new(config.admin_token.as_ref(), &config.tenant_admin_tokens),
    )
    .with_reads(reads)
    .with_discovery(config.discovery.clone())
    .with_oauth(oauth::AuthorizationServer::new(config.oauth.clone())?))
}

/// Serves the admin API on `config.http_addr` and filter sync on `config.grpc_addr` until SIGTERM
/// or SIGINT, then drains both and closes.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut state = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (INTENTGATE_HTTP_ADDR)",
                config.http_addr
            )
        })?;
    tracing::info!(addr = %config.http_addr, "listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut background = audit_tasks(&config, &mut state, &stopped)?;
    background.push(approvals::sweep::schedule(
        state.recorder(),
        config.approvals,
        stopped.clone(),
    ));
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    // The peer's address feeds the token endpoint's per-source limit on failed authentications.
    let http = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(until_stopped());
    let grpc = grpc::serve(
        config.grpc_addr,
        state.db.clone(),
        &state.changes,
        std::sync::Arc::clone(&state.signing),
        grpc::Settings {
            poll: config.sync_poll,
            filter_token: config
                .filter_token
                .as_ref()
                .map(|t| auth::HashedToken::new(&t.0)),
            approvals: config.approvals,
        },
        until_stopped(),
    );
    tokio::try_join!(
        async { http.await.context("admin API server failed") },
        async {
            grpc.await.with_context(|| {
                format!(
                    "filter sync on {} (INTENTGATE_GRPC_ADDR) failed",
                    config.grpc_addr
                )
            })
        }
    )?;
    for task in background {
        let _ = task.await;
    }
    state.db.close().await;
    state.reads.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Audit delivery (one task per destination) and scheduled tree heads, until `stop`.
fn audit_tasks(
    config: &Config,
    state: &mut AppState,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let (configured, mut tasks) = delivery::start(&state.db, &config.delivery, stop)
        .map_err(anyhow::Error::msg)
        .context("cannot start audit delivery")?;
    state.delivery = std::sync::Arc::new(configured);
    if !config.tree_head_interval.is_zero() {
        tasks.push(audit::tree::schedule(
            state.db.clone(),
            intentgate_core::token::IssuerKey::from_seed(state.keys.seed()),
            config.tree_head_interval,
            stop.clone(),
        ));
    }
    Ok(tasks)
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
