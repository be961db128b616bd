//! The engine's [`Host`] off any stream: a runtime's own work on the background thread (the tick,
//! the control plane's answers) and a configuration being made or dropped. The clock, the log, the
//! shared counters and, with a process that has one, the control plane through its
//! [`Link`](super::Link); no stream, so no headers, bodies or callouts.

use std::sync::Arc;

use intentgate_core::engine::settings::ControlPlaneConfig;
use intentgate_core::engine::{CallId, CounterError, Host, HttpCallout, Level, Rpc};

use super::{Link, guarded, next_call_id, spawn};
use crate::counters;
use crate::host;
use crate::process::Process;

pub struct LinkedHost<'p> {
    process: Option<&'p Arc<Process>>,
}

impl<'p> LinkedHost<'p> {
    pub fn new(process: &'p Arc<Process>) -> Self {
        LinkedHost {
            process: Some(process),
        }
    }

    /// Without a process: nothing to call the control plane with.
    pub fn unlinked() -> Self {
        LinkedHost { process: None }
    }

    fn link(&self) -> Option<&'p Link> {
        self.process.and_then(|process| process.link.as_ref())
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
        Ok(Vec::new())
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
        counters::update(key, window, step)
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
        let target = self.link()?.target();
        let call = next_call_id();
        let process = Arc::downgrade(self.process?);
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
        self.link()?.open_sync(self.process?, first)
    }

    fn send_sync(&mut self, stream: CallId, message: &[u8]) -> bool {
        self.link()
            .is_some_and(|link| link.send_sync(stream, message))
    }

    fn close_sync(&mut self, stream: CallId) {
        if let Some(link) = self.link() {
            link.close_sync(stream);
        }
    }
}
