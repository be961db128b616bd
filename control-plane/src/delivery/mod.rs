//! SIEM and webhook delivery of the audit log: Splunk HEC, Datadog logs, Microsoft
//! Sentinel (Logs Ingestion API), a signed webhook and syslog (RFC 5424 over TCP or TLS).
//!
//! - [`config`] reads the destinations from the environment;
//! - [`worker`] runs one task per configured destination, at least once, in chain order per
//!   tenant, resuming from durable cursors after a restart or an outage;
//! - [`store`] keeps the cursors, counters and the per-destination lease (one replica delivers a
//!   destination at a time);
//! - [`sink`] is what a destination implements; one module per destination speaks its wire format.

pub mod config;
pub mod datadog;
pub mod event;
pub mod sentinel;
pub mod sink;
pub mod splunk;
pub mod store;
pub mod syslog;
pub mod webhook;
pub mod worker;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::DeliveryConfig;

use sink::{Shared, Sink};
use worker::Worker;

use crate::error::Result;
use crate::store::Db;

/// Every destination IntentGate can deliver to, in the order the integrations list shows them.
pub const DESTINATIONS: [&str; 5] = ["splunk", "datadog", "sentinel", "webhook", "syslog"];

/// The configured destinations of this process: name and endpoint (no secrets).
#[derive(Debug, Clone, Default)]
pub struct Configured {
    endpoints: Vec<(&'static str, String)>,
}

/// One entry of `GET /v1/admin/integrations`: the API reference's fields, and `lag`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Integration {
    pub name: &'static str,
    pub configured: bool,
    pub endpoint: Option<String>,
    pub last_flush_ts: Option<String>,
    pub events_flushed: u64,
    pub events_dropped: u64,
    pub last_error: Option<String>,
    /// Events not yet delivered (or skipped by the selection); `null` when not configured.
    pub lag: Option<u64>,
}

impl Configured {
    pub fn endpoint(&self, name: &str) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.as_str())
    }

    /// Every destination's status; counters come from the database, so every replica reports
    /// the same whichever one delivers.
    pub async fn report(&self, db: &Db) -> Result<Vec<Integration>> {
        let mut out = Vec::with_capacity(DESTINATIONS.len());
        for name in DESTINATIONS {
            let endpoint = self.endpoint(name).map(str::to_owned);
            let state = store::state(db, name).await?;
            out.push(Integration {
                name,
                configured: endpoint.is_some(),
                lag: endpoint.as_ref().map(|_| state.lag),
                endpoint,
                last_flush_ts: state.last_flush_at.map(crate::time::rfc3339),
                events_flushed: state.events_flushed,
                events_dropped: state.events_dropped,
                last_error: state.last_error,
            });
        }
        Ok(out)
    }
}

/// Builds the configured destinations and starts a worker task for each; they run until `stop`
/// turns true. Fails when a destination cannot be set up (a TLS CA file that does not load).
pub fn start(
    db: &Db,
    config: &DeliveryConfig,
    stop: &watch::Receiver<bool>,
) -> Result<(Configured, Vec<JoinHandle<()>>), String> {
    let settings = config.settings.clone();
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("intentgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut launcher = Launcher {
        db,
        shared: Shared { client, settings },
        owner: crate::ids::new_id().map_err(|e| e.to_string())?,
        stop,
        configured: Configured::default(),
        tasks: Vec::new(),
    };
    launcher.launch::<splunk::Splunk>(config.splunk.as_ref())?;
    launcher.launch::<datadog::Datadog>(config.datadog.as_ref())?;
    launcher.launch::<sentinel::Sentinel>(config.sentinel.as_ref())?;
    launcher.launch::<webhook::Webhook>(config.webhook.as_ref())?;
    launcher.launch::<syslog::Syslog>(config.syslog.as_ref())?;
    Ok((launcher.configured, launcher.tasks))
}

/// Builds each configured destination and starts its worker, in one way for all of them.
struct Launcher<'a> {
    db: &'a Db,
    shared: Shared,
    /// This process's claim on the destinations it delivers (one replica per destination).
    owner: String,
    stop: &'a watch::Receiver<bool>,
    configured: Configured,
    tasks: Vec<JoinHandle<()>>,
}

impl Launcher<'_> {
    fn launch<S: Sink>(&mut self, config: Option<&S::Config>) -> Result<(), String> {
        let Some(config) = config else {
            return Ok(());
        };
        let sink = S::build(config, &self.shared)?;
        let selection = S::selection(config);
        tracing::info!(destination = sink.name(), endpoint = %sink.endpoint(), ?selection, "delivering the audit log");
        self.configured
            .endpoints
            .push((sink.name(), sink.endpoint()));
        let worker = Worker {
            db: self.db.clone(),
            sink,
            selection,
            settings: self.shared.settings.clone(),
            owner: self.owner.clone(),
        };
        self.tasks.push(tokio::spawn(worker.run(self.stop.clone())));
        Ok(())
    }
}
