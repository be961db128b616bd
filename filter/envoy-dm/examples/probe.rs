//! A test module that drives every part of the safe layer from inside a real Envoy
//! (tests/e2e/test_native_abi.py). The request header `x-probe` picks what a stream does; the
//! configuration `{"cluster": "<name>"}` names the cluster its callouts go to.
//!
//! Build: `cargo build --profile native -p intentgate-envoy-dm --example probe`
//! (`target/native/examples/libprobe.so`).

// A test fixture: it panics on purpose, to prove the barrier in a built module.
#![allow(clippy::panic)]

use std::thread::{self, ThreadId};
use std::time::Duration;

use intentgate_envoy_dm::log::{self, Level};
use intentgate_envoy_dm::{
    BodyAction, CalloutFailure, CalloutId, CalloutResponse, ConfigHandle, ConfigInit, Counter,
    Direction, HeaderMap, HeadersAction, Histogram, HttpFilter, HttpFilterConfig, LocalResponse,
    Stream,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    cluster: String,
    /// `config` or `new_filter`: panic there, to prove the barrier around those hooks.
    #[serde(default)]
    panic_in: Option<String>,
}

struct Probe {
    cluster: String,
    panic_in_new_filter: bool,
    requests: Counter,
    body_bytes: Histogram,
    config_wakeups: Counter,
    config_callouts: Counter,
}

const CONFIG_EVENT: u64 = 7;
const WAKE_EVENT: u64 = 1;

fn new_config(
    init: &mut ConfigInit<'_>,
    _filter_name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterConfig>, Box<dyn std::error::Error + Send + Sync>> {
    let settings: Settings = serde_json::from_slice(config)?;
    if settings.panic_in.as_deref() == Some("config") {
        panic!("probe: panic while the configuration is made");
    }
    let probe = Probe {
        cluster: settings.cluster,
        panic_in_new_filter: settings.panic_in.as_deref() == Some("new_filter"),
        requests: init.counter("probe_requests")?,
        body_bytes: init.histogram("probe_body_bytes")?,
        config_wakeups: init.counter("probe_config_wakeups")?,
        config_callouts: init.counter("probe_config_callouts")?,
    };
    // A thread of the module wakes the configuration on the main thread once, as a control-plane
    // client thread would.
    let waker = init.waker().ok_or("no configuration scheduler")?;
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        waker.wake(CONFIG_EVENT);
    });
    Ok(Box::new(probe))
}

intentgate_envoy_dm::module!(new_config);

impl HttpFilterConfig for Probe {
    fn new_filter(&self) -> Box<dyn HttpFilter> {
        if self.panic_in_new_filter {
            panic!("probe: panic in new_filter");
        }
        Box::new(Stage {
            cluster: self.cluster.clone(),
            requests: self.requests,
            body_bytes: self.body_bytes,
            action: String::new(),
            worker: thread::current().id(),
            waiting: false,
        })
    }

    fn fail_closed_response(&self) -> LocalResponse {
        LocalResponse::new(500, "probe failed closed\n").details("probe_failed_closed")
    }

    fn on_scheduled(&self, config: &ConfigHandle, event: u64) {
        if event != CONFIG_EVENT {
            return;
        }
        config.increment(self.config_wakeups, 1);
        let headers: [(&str, &[u8]); 3] = [
            (":method", b"GET"),
            (":path", b"/config"),
            ("host", b"probe"),
        ];
        if let Err(err) = config.callout(&self.cluster, &headers, b"", Duration::from_secs(5)) {
            log::log(
                Level::Error,
                &format!("probe: configuration callout not started: {err}"),
            );
        }
    }

    fn on_callout_done(
        &self,
        config: &ConfigHandle,
        _id: CalloutId,
        result: Result<CalloutResponse, CalloutFailure>,
    ) {
        if result.is_ok_and(|answer| answer.status() == Some(200)) {
            config.increment(self.config_callouts, 1);
        }
    }
}

/// One stream of the probe.
struct Stage {
    cluster: String,
    requests: Counter,
    body_bytes: Histogram,
    action: String,
    worker: ThreadId,
    waiting: bool,
}

impl Stage {
    fn wake_later(&mut self, stream: &mut Stream<'_>, after: Duration) {
        let Some(waker) = stream.waker() else {
            stream.respond(LocalResponse::new(500, "no scheduler"));
            return;
        };
        self.waiting = true;
        thread::spawn(move || {
            thread::sleep(after);
            if !waker.wake(WAKE_EVENT) {
                log::log(
                    Level::Info,
                    "probe: wake-up after the stream ended was refused",
                );
            }
        });
    }

    /// Answers a JSON object of what the filter saw.
    fn answer(stream: &mut Stream<'_>, value: serde_json::Value) {
        let body = value.to_string();
        stream.respond(
            LocalResponse::new(200, body)
                .header("content-type", "application/json")
                .header("x-probe-answer", "local")
                .details("probe_answer"),
        );
    }
}

impl HttpFilter for Stage {
    fn on_request_headers(
        &mut self,
        stream: &mut Stream<'_>,
        end_of_stream: bool,
    ) -> HeadersAction {
        stream.increment(self.requests, 1);
        let headers = stream.headers(HeaderMap::RequestHeaders);
        self.action =
            String::from_utf8_lossy(headers.get("x-probe").unwrap_or_default()).into_owned();
        self.worker = thread::current().id();
        log::log(Level::Info, &format!("probe: action {:?}", self.action));
        match self.action.as_str() {
            "headers" => {
                let seen: Vec<(String, String)> = headers
                    .iter()
                    .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                let single = stream
                    .header(HeaderMap::RequestHeaders, "x-one")
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                Stage::answer(
                    stream,
                    serde_json::json!({"headers": seen, "x-one": single}),
                );
                HeadersAction::Stop
            }
            "mutate" | "mutate-show" => {
                stream.set_header(HeaderMap::RequestHeaders, "x-set", b"set");
                stream.add_header(HeaderMap::RequestHeaders, "x-added", b"1");
                stream.add_header(HeaderMap::RequestHeaders, "x-added", b"2");
                stream.remove_header(HeaderMap::RequestHeaders, "x-remove");
                if self.action == "mutate" {
                    return HeadersAction::Continue;
                }
                let after = stream.headers(HeaderMap::RequestHeaders);
                let added: Vec<String> = after
                    .get_all("x-added")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                let removed = after.get("x-remove").is_none();
                Stage::answer(
                    stream,
                    serde_json::json!({"x-added": added, "x-remove gone": removed}),
                );
                HeadersAction::Stop
            }
            "wake" | "panic-scheduled" => {
                self.wake_later(stream, Duration::from_millis(100));
                HeadersAction::Stop
            }
            "wake-late" => {
                self.wake_later(stream, Duration::from_millis(1500));
                HeadersAction::Stop
            }
            "callout" | "callout-nowhere" => {
                let cluster = if self.action == "callout" {
                    self.cluster.as_str()
                } else {
                    "no-such-cluster"
                };
                let headers: [(&str, &[u8]); 3] = [
                    (":method", b"GET"),
                    (":path", b"/stream"),
                    ("host", b"probe"),
                ];
                match stream.callout(cluster, &headers, b"", Duration::from_secs(5)) {
                    Ok(_) => self.waiting = true,
                    Err(err) => Stage::answer(
                        stream,
                        serde_json::json!({"callout_error": err.to_string()}),
                    ),
                }
                HeadersAction::Stop
            }
            "panic-request-headers" => panic!("probe: panic in on_request_headers"),
            _ if end_of_stream => HeadersAction::Continue,
            _ => HeadersAction::Stop,
        }
    }

    fn on_request_body(&mut self, stream: &mut Stream<'_>, end_of_stream: bool) -> BodyAction {
        if !end_of_stream || self.waiting {
            return BodyAction::Buffer;
        }
        let body = stream.body(Direction::Request);
        stream.record(
            self.body_bytes,
            u64::try_from(body.len()).unwrap_or(u64::MAX),
        );
        match self.action.as_str() {
            "echo-body" => {
                stream.respond(LocalResponse::new(200, body).details("probe_echo"));
                BodyAction::Hold
            }
            "replace-body" => {
                let replaced = body.to_ascii_uppercase();
                stream.replace_body(Direction::Request, &replaced);
                stream.set_header(
                    HeaderMap::RequestHeaders,
                    "content-length",
                    replaced.len().to_string().as_bytes(),
                );
                BodyAction::Continue
            }
            "panic-request-body" => panic!("probe: panic in on_request_body"),
            _ => BodyAction::Continue,
        }
    }

    fn on_response_headers(
        &mut self,
        stream: &mut Stream<'_>,
        end_of_stream: bool,
    ) -> HeadersAction {
        match self.action.as_str() {
            "panic-response-headers" => panic!("probe: panic in on_response_headers"),
            "wake-response" => {
                self.wake_later(stream, Duration::from_millis(100));
                HeadersAction::Stop
            }
            "replace-response" if !end_of_stream => HeadersAction::Stop,
            _ => {
                stream.set_header(HeaderMap::ResponseHeaders, "x-probe-response", b"seen");
                HeadersAction::Continue
            }
        }
    }

    fn on_response_body(&mut self, stream: &mut Stream<'_>, end_of_stream: bool) -> BodyAction {
        if self.waiting {
            return BodyAction::Buffer;
        }
        if self.action != "replace-response" {
            return BodyAction::Continue;
        }
        if !end_of_stream {
            return BodyAction::Buffer;
        }
        let original = stream.body(Direction::Response);
        let replaced = format!("replaced {} bytes", original.len());
        stream.replace_body(Direction::Response, replaced.as_bytes());
        stream.set_header(
            HeaderMap::ResponseHeaders,
            "content-length",
            replaced.len().to_string().as_bytes(),
        );
        BodyAction::Continue
    }

    fn on_scheduled(&mut self, stream: &mut Stream<'_>, event: u64) {
        if event != WAKE_EVENT || !self.waiting {
            return;
        }
        if self.action == "panic-scheduled" {
            panic!("probe: panic in on_scheduled");
        }
        self.waiting = false;
        let same = if thread::current().id() == self.worker {
            "yes"
        } else {
            "no"
        };
        if self.action == "wake-response" {
            stream.set_header(
                HeaderMap::ResponseHeaders,
                "x-woken-on-worker",
                same.as_bytes(),
            );
            stream.resume_response();
        } else {
            stream.set_header(
                HeaderMap::RequestHeaders,
                "x-woken-on-worker",
                same.as_bytes(),
            );
            stream.resume_request();
        }
    }

    fn on_callout_done(
        &mut self,
        stream: &mut Stream<'_>,
        _id: CalloutId,
        result: Result<CalloutResponse, CalloutFailure>,
    ) {
        self.waiting = false;
        match result {
            Ok(answer) => {
                let body = String::from_utf8_lossy(&answer.body).into_owned();
                Stage::answer(
                    stream,
                    serde_json::json!({"callout_status": answer.status(), "callout_body": body}),
                );
            }
            Err(failure) => Stage::answer(
                stream,
                serde_json::json!({"callout_failure": failure.to_string()}),
            ),
        }
    }
}
