//! The engine's [`Host`] for a runtime's own work on the background thread (the tick, the control
//! plane's answers): the clock, the log, the shared counters, and the control plane through the
//! runtime's [`Link`](super::Link).

use std::sync::Arc;

use intentgate_core::engine::settings::ControlPlaneConfig;
use intentgate_core::engine::{CallId, CounterError, Host, HttpCallout, Level, Rpc};

use super::{guarded, next_call_id, spawn};
use crate::host::{self, Plain};
use crate::process::Process;

pub struct LinkedHost<'p> {
    process: &'p Arc<Process>,
}

impl<'p> LinkedHost<'p> {
    pub fn new(process: &'p Arc<Process>) -> Self {
        LinkedHost { process }
    }
}

impl Host for LinkedHost<'_> {
    fn now_ns(&mut self) -> u64 {
        host::now_ns()
    }

    fn log(&mut self, level: Level, message: &str) {
        host::log(level, message);
    }

    fn log_level(&mut self) -> Level {
        host::log_level()
    }

    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String> {
        Plain.request_headers()
    }

    fn source_address(&mut self) -> String {
        String::new()
    }

    fn request_body(&mut self, _size: usize) -> Option<Vec<u8>> {
        None
    }

    fn response_header(&mut self, _name: &str) -> Option<String> {
        None
    }

    fn response_body(&mut self, _size: usize) -> Option<Vec<u8>> {
        None
    }

    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError> {
        Plain.update_counter(key, window, step)
    }

    fn http_callout(&mut self, _callout: &HttpCallout<'_>) -> Option<CallId> {
        None
    }

    /// An audit batch or a lease giveback; the answer goes to the runtime.
    fn grpc_call(
        &mut self,
        _to: &ControlPlaneConfig,
        rpc: Rpc,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<CallId> {
        let target = self.process.link.as_ref()?.target();
        let call = next_call_id();
        let process = Arc::downgrade(self.process);
        let message = message.to_vec();
        let timeout = std::time::Duration::from_millis(timeout_ms);
        spawn(async move {
            let (status, answer) = target.unary(rpc, message, timeout).await;
            if let Some(process) = process.upgrade() {
                guarded("a control plane answer", || {
                    process.runtime.on_call_answer(
                        &mut LinkedHost::new(&process),
                        call,
                        status,
                        &answer,
                    )
                });
            }
        });
        Some(call)
    }

    fn open_sync(&mut self, _to: &ControlPlaneConfig, first: &[u8]) -> Option<CallId> {
        self.process.link.as_ref()?.open_sync(self.process, first)
    }

    fn send_sync(&mut self, stream: CallId, message: &[u8]) -> bool {
        self.process
            .link
            .as_ref()
            .is_some_and(|link| link.send_sync(stream, message))
    }

    fn close_sync(&mut self, stream: CallId) {
        if let Some(link) = &self.process.link {
            link.close_sync(stream);
        }
    }
}
