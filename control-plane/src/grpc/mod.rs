//! The filter sync transport: `intentgate.v1.FilterSync` over gRPC (tonic). Filters subscribe to the
//! gateway state, send their audit events, park and use approvals and lease budgets here; every call
//! is translated to the domain module that owns it ([`service`], [`stream`]), and every error goes
//! through one mapping ([`error`]).

pub mod error;
pub mod service;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use intentgate_proto::v1::filter_sync_server::FilterSyncServer;
use tonic::{Request, Status};

use crate::auth::{HashedToken, bearer};
use crate::filters::{Hub, Ingest, state};
use crate::keys::SigningKeys;
use crate::store::Db;
use crate::store::changes::Changes;

/// How FilterSync runs: the state-version poll (`None`: notifications alone), the filters' token
/// and the approvals' settings.
pub struct Settings {
    pub poll: Option<std::time::Duration>,
    pub filter_token: Option<HashedToken>,
    pub approvals: crate::approvals::Settings,
}

/// Starts the version feeds and serves FilterSync on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    db: Db,
    changes: &Changes,
    signing: Arc<SigningKeys>,
    Settings {
        poll,
        filter_token,
        approvals,
    }: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let initial = {
        let mut conn = db.pool().acquire().await?;
        state::version(&mut conn).await?
    };
    let hub = Hub::new(initial);
    hub.spawn_feeds(db.clone(), changes, signing, poll);
    let service = FilterSyncServer::with_interceptor(
        service::Service {
            db,
            ingest: Ingest::default(),
            hub,
            changes: changes.clone(),
            approvals,
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

/// With `INTENTGATE_FILTER_TOKEN` set, every call must carry `authorization: Bearer <token>`, checked
/// like the admin tokens: any case of the scheme, digests compared in constant time.
fn authenticate(
    token: Option<HashedToken>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request: Request<()>| {
        let Some(expected) = &token else {
            return Ok(request);
        };
        let admitted = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .is_some_and(|presented| expected.matches(presented));
        if admitted {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or invalid filter token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    const TOKEN: &str = "filter-token-0123456789";

    fn call(authorization: Option<&str>, token: Option<&str>) -> Result<(), Code> {
        let mut request = Request::new(());
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        authenticate(token.map(HashedToken::new))(request)
            .map(|_| ())
            .map_err(|status| status.code())
    }

    #[test]
    fn the_filter_token_is_checked_like_the_admin_tokens() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                call(Some(&format!("{scheme} {TOKEN}")), Some(TOKEN)),
                Ok(()),
                "{scheme}"
            );
        }
        for refused in [
            None,
            Some(TOKEN),
            Some("Bearer"),
            Some("Bearer filter-token-012345678"),
            Some("Bearer filter-token-01234567890"),
            Some("Basic filter-token-0123456789"),
        ] {
            assert_eq!(
                call(refused, Some(TOKEN)),
                Err(Code::Unauthenticated),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn without_a_configured_token_every_filter_is_admitted() {
        assert_eq!(call(None, None), Ok(()));
    }
}
