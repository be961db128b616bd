//! The module's background thread: one per Envoy process, running a single-threaded tokio runtime.
//! It ticks every runtime (audit lines written, stats handed to Envoy, budget blocks given back)
//! and is the control plane's gRPC client (tonic, [`link`]). No worker thread ever waits for it: a
//! stream's gRPC call is handed over without blocking (refused when too many are in flight, and the
//! engine then fails closed), and its answer comes back to the stream's own worker through the
//! stream's waker ([`inbox`]).

mod codec;
mod credential;
mod inbox;
mod link;
mod linked;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use intentgate_core::engine::{Answer, CallId, Level, Rpc};
use tokio::runtime::Handle;
use tokio::time::MissedTickBehavior;

pub use inbox::Inbox;
pub use link::{Link, check as check_link};
pub use linked::LinkedHost;

use crate::host::log;
use crate::process::Process;

/// gRPC calls of streams in flight at once; beyond, a call is refused (the request fails closed).
const MAX_STREAM_CALLS: usize = 10_000;

/// gRPC status the engine gets when the call never reached the control plane.
const UNAVAILABLE: u32 = 14;

pub struct Background {
    handle: Handle,
}

static BACKGROUND: OnceLock<Result<Background, String>> = OnceLock::new();
static NEXT_CALL: AtomicU32 = AtomicU32::new(1);
static STREAM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The background thread, started on first use.
pub fn get() -> Result<&'static Background, String> {
    BACKGROUND
        .get_or_init(start)
        .as_ref()
        .map_err(|err| format!("the module's background thread did not start: {err}"))
}

fn start() -> Result<Background, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("intentgate".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| e.to_string())?;
    Ok(Background { handle })
}

/// A fresh id for a call or callout; ids are unique across the process.
pub fn next_call_id() -> CallId {
    NEXT_CALL.fetch_add(1, Ordering::Relaxed)
}

/// Runs `f`, which calls into the engine off any stream; a panic is logged, never unwound further.
fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            log(Level::Error, &format!("intentgate: {what} failed"));
            None
        }
    }
}

impl Background {
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Ticks `process`'s runtime every `tick_ms` until the last configuration using it is gone.
    pub fn tick(&self, process: &Arc<Process>) {
        let weak = Arc::downgrade(process);
        let period = Duration::from_millis(process.runtime.settings.tick_ms());
        self.handle.spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(process) = weak.upgrade() else {
                    break;
                };
                let deltas = guarded("the tick", || {
                    process.runtime.tick(&mut LinkedHost::new(&process))
                });
                process.stats.push(deltas.unwrap_or_default());
            }
        });
    }
}

/// One of a stream's gRPC calls (a lease, an approval), made on the background thread; its answer
/// goes to `inbox`. `None` when the call cannot be handed over: the engine then fails closed.
pub fn call_for_stream(
    process: &Arc<Process>,
    inbox: Arc<Inbox>,
    rpc: Rpc,
    message: &[u8],
    timeout_ms: u64,
) -> Option<CallId> {
    let background = get().ok()?;
    let link = process.link.as_ref()?;
    let target = link.target();
    if STREAM_CALLS.fetch_add(1, Ordering::Relaxed) >= MAX_STREAM_CALLS {
        STREAM_CALLS.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let call = next_call_id();
    let in_flight = InFlight {
        inbox: Some(inbox),
        call,
    };
    let process = Arc::downgrade(process);
    let message = message.to_vec();
    let timeout = Duration::from_millis(timeout_ms);
    background.handle.spawn(async move {
        let (status, reply) = target.unary(rpc, message.clone(), timeout).await;
        let giveback = (rpc == Rpc::LeaseBudget && status == 0)
            .then(|| link::returning(&message, &reply))
            .flatten();
        let answer = Answer::Grpc {
            status,
            message: reply,
        };
        if let Some(giveback) = in_flight.deliver(answer, giveback) {
            give_back(&process, giveback);
        }
    });
    Some(call)
}

/// A stream call on its way, counted while it is. If its task ends without answering (it
/// panicked), the stream still gets an answer, a failure, so it fails closed instead of waiting.
struct InFlight {
    inbox: Option<Arc<Inbox>>,
    call: CallId,
}

impl InFlight {
    /// Delivers the answer; returns the lease giveback when the stream refused it.
    fn deliver(mut self, answer: Answer, giveback: Option<Vec<u8>>) -> Option<Vec<u8>> {
        self.inbox.take()?.deliver(self.call, answer, giveback)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            let failed = Answer::Grpc {
                status: UNAVAILABLE,
                message: Vec::new(),
            };
            let _ = inbox.deliver(self.call, failed, None);
        }
        STREAM_CALLS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The stream ended: answers that wait or come later are refused, and the leases among them given
/// back to the control plane, which otherwise counts them as used until they expire.
pub fn refuse(process: &Arc<Process>, inbox: &Inbox) {
    let weak = Arc::downgrade(process);
    for giveback in inbox.close() {
        give_back(&weak, giveback);
    }
}

/// Returns a lease the stream did not use (best effort: a lease not given back only expires).
fn give_back(process: &Weak<Process>, request: Vec<u8>) {
    let Some(target) = process
        .upgrade()
        .and_then(|p| p.link.as_ref().map(Link::target))
    else {
        return;
    };
    spawn(async move {
        let timeout = target.call_timeout();
        target.unary(Rpc::LeaseBudget, request, timeout).await;
    });
}

/// Spawns `task` on the background thread.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(background) = get() {
        background.handle.spawn(task);
    }
}
