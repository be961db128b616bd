//! Filter sync (issue 5): the gRPC service filters subscribe to for gateway state, send audit
//! events to, and lease budgets from; the version hub that tells every stream when to send a delta.

pub mod filters;
pub mod hub;
pub mod service;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use intentgate_proto::v1::filter_sync_server::FilterSyncServer;
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use crate::keys::SigningKeys;
use crate::store::Db;
use crate::store::changes::Changes;

pub use hub::Hub;

/// Starts the version feeds and serves FilterSync on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    db: Db,
    changes: &Changes,
    signing: Arc<SigningKeys>,
    filter_token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let initial = {
        let mut conn = db.pool().acquire().await?;
        state::version(&mut conn).await?
    };
    let hub = Hub::new(initial);
    hub.spawn_feeds(db.clone(), changes, signing);
    let service = FilterSyncServer::with_interceptor(
        service::Service {
            db,
            hub,
            changes: changes.clone(),
        },
        authenticate(filter_token),
    );
    tracing::info!(%addr, "filter sync listening");
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(service)
        .serve_with_shutdown(addr, shutdown)
        .await?;
    Ok(())
}

/// With `INTENTGATE_FILTER_TOKEN` set, every call must carry `authorization: Bearer <token>`.
fn authenticate(
    token: Option<String>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request: Request<()>| {
        let Some(expected) = &token else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or invalid filter token"))
        }
    }
}
