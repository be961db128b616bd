//! The control plane's gRPC client: a tonic channel to `control_plane.address` (HTTP/2, TLS for
//! `https://`), unary calls with a deadline, and the Sync stream, whose messages go to the runtime
//! on the background thread (decoding and loading a pushed state never runs on a worker).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use intentgate_core::engine::settings::ControlPlaneConfig;
use intentgate_core::engine::{CallId, Level, Rpc};
use intentgate_proto::v1;
use prost::Message as _;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::client::Grpc;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use super::codec::Raw;
use super::credential::{Change, Credential, TokenFile, describe};
use super::{LinkedHost, guarded, next_call_id};
use crate::host::log;
use crate::process::Process;

/// gRPC's DEADLINE_EXCEEDED: the call did not end within its timeout.
const DEADLINE_EXCEEDED: u32 = 4;
const SERVICE: &str = "/intentgate.v1.FilterSync/";

/// The endpoint `config` names, checked: a URI with an `http` or `https` scheme, TLS settings only
/// for `https`, a token that can be a header value (a token file is read when calls go out).
fn endpoint(config: &ControlPlaneConfig) -> Result<(Endpoint, Credential), String> {
    let address = config.address.as_deref().unwrap_or_default();
    let invalid = |why: String| format!("control_plane.address {address:?}: {why}");
    let mut endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(Duration::from_millis(config.call_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    match endpoint.uri().scheme_str() {
        Some("https") => {
            let settings = config.tls.as_ref();
            let mut tls = ClientTlsConfig::new();
            tls = match settings.and_then(|t| t.ca_file.as_deref()) {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("control_plane.tls.ca_file {path}: {e}"))?;
                    tls.ca_certificate(Certificate::from_pem(pem))
                }
                None => tls.with_webpki_roots(),
            };
            if let Some(name) = settings.and_then(|t| t.server_name.as_deref()) {
                tls = tls.domain_name(name);
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| invalid(e.to_string()))?;
        }
        Some("http") if config.tls.is_some() => {
            return Err(invalid(
                "control_plane.tls needs an https:// address".into(),
            ));
        }
        Some("http") => {}
        _ => return Err(invalid("the scheme must be http:// or https://".into())),
    }
    let credential = match (config.metadata(), config.token_file.as_deref()) {
        (Some(value), _) => Credential::Fixed(
            value
                .parse::<AsciiMetadataValue>()
                .map_err(|_| "control_plane.token is not a valid header value".to_owned())?,
        ),
        (None, Some(path)) => Credential::File(TokenFile::new(path)),
        (None, None) => Credential::None,
    };
    Ok((endpoint, credential))
}

/// Checks `config` as [`Link::new`] would, connecting nothing.
pub fn check(config: &ControlPlaneConfig) -> Result<(), String> {
    endpoint(config).map(drop)
}

/// Where calls go: cheap to clone into a task.
#[derive(Clone)]
pub struct Target {
    channel: Channel,
    credential: Arc<Credential>,
    call_timeout: Duration,
}

impl Target {
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The call's request, with the filter token; UNAVAILABLE, as for an unreachable control plane,
    /// while the token file cannot be used.
    fn request<T>(&self, message: T, timeout: Option<Duration>) -> Result<Request<T>, Status> {
        let authorization = self
            .credential
            .present(|path, change| {
                let level = match change {
                    Change::Read { .. } => Level::Info,
                    Change::Failed(_) => Level::Error,
                };
                log(level, &describe(path, &change));
            })
            .map_err(|_| Status::unavailable("control_plane.token_file holds no usable token"))?;
        let mut request = Request::new(message);
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        if let Some(authorization) = authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization);
        }
        Ok(request)
    }

    async fn ready(&self) -> Result<Grpc<Channel>, Status> {
        let mut grpc = Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(grpc)
    }

    /// One unary call: `(gRPC status, answer)`; the status is DEADLINE_EXCEEDED when nothing came
    /// within `timeout` (connecting included).
    pub async fn unary(&self, rpc: Rpc, message: Vec<u8>, timeout: Duration) -> (u32, Vec<u8>) {
        let call = async {
            let path = path(rpc.name())?;
            let request = self.request(message, Some(timeout))?;
            let mut grpc = self.ready().await?;
            grpc.unary(request, path, Raw).await
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => (0, answer.into_inner()),
            Ok(Err(status)) => (code(&status), Vec::new()),
            Err(_) => (DEADLINE_EXCEEDED, Vec::new()),
        }
    }
}

fn path(method: &str) -> Result<http::uri::PathAndQuery, Status> {
    format!("{SERVICE}{method}")
        .parse()
        .map_err(|_| Status::internal("bad gRPC path"))
}

fn code(status: &Status) -> u32 {
    u32::try_from(i32::from(status.code())).unwrap_or(2)
}

/// A LeaseBudget request giving back the whole lease `answer` granted for `request`; `None` when
/// nothing was granted.
pub fn returning(request: &[u8], answer: &[u8]) -> Option<Vec<u8>> {
    let asked = v1::LeaseRequest::decode(request).ok()?;
    let granted = v1::LeaseResponse::decode(answer).ok()?;
    (granted.granted > 0).then(|| {
        v1::LeaseRequest {
            filter_id: asked.filter_id,
            counter: asked.counter,
            returning_lease_id: granted.lease_id,
            returning_unused: granted.granted,
            ..Default::default()
        }
        .encode_to_vec()
    })
}

/// A runtime's link to its control plane.
pub struct Link {
    target: Target,
    /// Open Sync streams: what their task sends, and the task.
    streams: Mutex<HashMap<CallId, Outbound>>,
}

struct Outbound {
    messages: mpsc::UnboundedSender<Vec<u8>>,
    task: Option<AbortHandle>,
}

impl Link {
    /// A channel that connects on first use (and reconnects), made in the background's runtime.
    pub fn new(config: &ControlPlaneConfig, background: &Handle) -> Result<Link, String> {
        let (endpoint, credential) = endpoint(config)?;
        let channel = {
            let _context = background.enter();
            endpoint.connect_lazy()
        };
        let target = Target {
            channel,
            credential: Arc::new(credential),
            call_timeout: Duration::from_millis(config.call_timeout_ms),
        };
        // Read at start, so the log says at once whether the token file holds a token.
        let _ = target.request((), None);
        Ok(Link {
            target,
            streams: Mutex::new(HashMap::new()),
        })
    }

    pub fn target(&self) -> Target {
        self.target.clone()
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<CallId, Outbound>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the Sync stream of `process` with its first message; its messages and its end go to
    /// the runtime.
    pub fn open_sync(&self, process: &Arc<Process>, first: &[u8]) -> Option<CallId> {
        let background = super::get().ok()?;
        let (messages, outbound) = mpsc::unbounded_channel();
        messages.send(first.to_vec()).ok()?;
        let stream = next_call_id();
        self.streams().insert(
            stream,
            Outbound {
                messages,
                task: None,
            },
        );
        let task = background.handle().spawn(sync(
            Arc::downgrade(process),
            self.target(),
            stream,
            outbound,
        ));
        if let Some(open) = self.streams().get_mut(&stream) {
            open.task = Some(task.abort_handle());
        }
        Some(stream)
    }

    pub fn send_sync(&self, stream: CallId, message: &[u8]) -> bool {
        self.streams()
            .get(&stream)
            .is_some_and(|open| open.messages.send(message.to_vec()).is_ok())
    }

    pub fn close_sync(&self, stream: CallId) {
        if let Some(Outbound {
            task: Some(task), ..
        }) = self.streams().remove(&stream)
        {
            task.abort();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for (_, open) in self.streams().drain() {
            if let Some(task) = open.task {
                task.abort();
            }
        }
    }
}

/// The Sync stream's task: every message to the runtime, then its end.
async fn sync(
    process: Weak<Process>,
    target: Target,
    stream: CallId,
    outbound: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let status = run_sync(&process, &target, stream, outbound).await;
    let Some(process) = process.upgrade() else {
        return;
    };
    if let Some(link) = &process.link {
        link.streams().remove(&stream);
    }
    guarded("the sync stream's end", || {
        process
            .runtime
            .on_sync_close(&mut LinkedHost::new(&process), stream, status)
    });
}

async fn run_sync(
    process: &Weak<Process>,
    target: &Target,
    stream: CallId,
    outbound: mpsc::UnboundedReceiver<Vec<u8>>,
) -> u32 {
    let opened = async {
        let path = path("Sync")?;
        let request = target.request(UnboundedReceiverStream::new(outbound), None)?;
        let mut grpc = target.ready().await?;
        grpc.streaming(request, path, Raw).await
    };
    let mut inbound = match opened.await {
        Ok(response) => response.into_inner(),
        Err(status) => return code(&status),
    };
    loop {
        match inbound.message().await {
            Ok(Some(message)) => {
                let Some(process) = process.upgrade() else {
                    return 1;
                };
                guarded("a sync update", || {
                    process.runtime.on_sync_message(
                        &mut LinkedHost::new(&process),
                        stream,
                        &message,
                    )
                });
            }
            Ok(None) => return 0,
            Err(status) => return code(&status),
        }
    }
}
