//! SIEM and webhook delivery end to end: each destination's test server (real wire format) fails
//! for a while and recovers; every event arrives, in chain order per tenant, none lost, none twice;
//! after a restart (a new control plane on the same database) delivery resumes from the cursors;
//! a destination that is down shows its lag and last error; a poison event is dropped and counted.

mod servers;
mod syslog;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use intentgate_control_plane::audit;
use intentgate_control_plane::config::Config;
use intentgate_control_plane::delivery::{self, Configured, DeliveryConfig, Integration};
use intentgate_control_plane::store::Db;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::on_both_backends;
use crate::support::{SUPER, TestApp};
use servers::*;

on_both_backends!(
    splunk_receives_every_event_through_outage_and_restart,
    datadog_receives_every_event_through_outage_and_restart,
    sentinel_receives_every_event_through_outage_and_restart,
    webhook_receives_every_event_through_outage_and_restart,
    findings_selection_delivers_only_findings_and_keeps_no_lag,
    a_poison_event_is_dropped_and_counted_while_the_rest_arrive,
);

pub fn event(tenant: &str, n: usize) -> AuditEvent {
    let decision = match n % 5 {
        0 => AuditDecision::Deny,
        3 => AuditDecision::Escalate,
        _ => AuditDecision::Allow,
    };
    let mut e = AuditEvent::new(
        format!("{tenant}-{n:05}"),
        1_781_444_520_000 + n as i64,
        EventKind::ToolCall,
        decision,
    );
    e.tenant = tenant.into();
    e.tool = "read_invoice".into();
    e.agent_id = "agent-7".into();
    e.requires_step_up = n.is_multiple_of(7);
    e
}

pub async fn append(db: &Db, tenant: &str, range: std::ops::RangeInclusive<usize>) {
    let events: Vec<_> = range.map(|n| event(tenant, n)).collect();
    audit::append(db, &events).await.unwrap();
}

/// Delivery running for one control plane.
pub struct Running {
    pub db: Db,
    pub configured: Configured,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts delivery as `serve` does, with `vars` as the environment and fast retries.
    pub async fn start(db: &Db, vars: &[(&str, String)]) -> Running {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for (k, v) in [
            ("INTENTGATE_DELIVERY_BATCH_SIZE", "7"),
            ("INTENTGATE_DELIVERY_POLL_MS", "20"),
            ("INTENTGATE_DELIVERY_MIN_BACKOFF_MS", "10"),
            ("INTENTGATE_DELIVERY_MAX_BACKOFF_MS", "100"),
            ("INTENTGATE_DELIVERY_TIMEOUT_MS", "3000"),
        ] {
            map.entry(k.into()).or_insert_with(|| v.into());
        }
        let config = DeliveryConfig::from_lookup(&|name| map.get(name).cloned()).unwrap();
        let (stop, stopped) = watch::channel(false);
        let (configured, tasks) = delivery::start(db, &config, &stopped).unwrap();
        Running {
            db: db.clone(),
            configured,
            stop,
            tasks,
        }
    }

    /// Stops every worker and waits for them, as a SIGTERM would.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            task.await.unwrap();
        }
    }

    pub async fn report(&self, name: &str) -> Integration {
        self.configured
            .report(&self.db)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.name == name)
            .unwrap()
    }
}

/// Waits until `done` holds, or fails after 30 s.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The destination's status once its cursors caught up (a receiver holds a batch a moment
/// before the worker records it).
pub async fn settled(running: &Running, name: &str) -> Integration {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = running.report(name).await;
        if status.lag == Some(0) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids a tenant's chain holds, in order.
fn chain(tenant: &str, upto: usize) -> Vec<String> {
    (1..=upto).map(|n| format!("{tenant}-{n:05}")).collect()
}

/// Every id once, and each tenant's in chain order.
fn assert_in_order(ids: &[String], expected: &[(&str, usize)]) {
    let total: usize = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(ids.len(), total, "every event exactly once: {ids:?}");
    for (tenant, n) in expected {
        let got: Vec<String> = ids
            .iter()
            .filter(|id| id.starts_with(&format!("{tenant}-")))
            .cloned()
            .collect();
        assert_eq!(got, chain(tenant, *n), "{tenant}'s events in chain order");
    }
}

fn vars_for(name: &str, url: &str) -> Vec<(&'static str, String)> {
    match name {
        "splunk" => vec![
            ("INTENTGATE_SPLUNK_HEC_URL", url.to_owned()),
            ("INTENTGATE_SPLUNK_HEC_TOKEN", HEC_TOKEN.into()),
        ],
        "datadog" => vec![
            ("INTENTGATE_DATADOG_URL", url.to_owned()),
            ("INTENTGATE_DATADOG_API_KEY", DD_API_KEY.into()),
        ],
        "sentinel" => vec![
            ("INTENTGATE_SENTINEL_DCE_URL", url.to_owned()),
            ("INTENTGATE_SENTINEL_DCR_ID", DCR.into()),
            ("INTENTGATE_SENTINEL_STREAM", STREAM.into()),
            ("INTENTGATE_SENTINEL_TENANT_ID", AZ_TENANT.into()),
            ("INTENTGATE_SENTINEL_CLIENT_ID", "app-client-id".into()),
            ("INTENTGATE_SENTINEL_CLIENT_SECRET", AZ_CLIENT_SECRET.into()),
            ("INTENTGATE_SENTINEL_AUTHORITY_URL", url.to_owned()),
        ],
        _ => vec![
            ("INTENTGATE_WEBHOOK_URL", format!("{url}/hooks/intentgate")),
            ("INTENTGATE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ],
    }
}

/// A new control plane on the same database: what a restart is to delivery.
async fn restarted(app: &TestApp) -> Db {
    let url = app.state.db.url().to_owned();
    let config = Config::from_lookup(|name| match name {
        "INTENTGATE_ADMIN_TOKEN" => Some(SUPER.into()),
        "INTENTGATE_DATABASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    intentgate_control_plane::build(&config).await.unwrap().db
}

async fn outage_and_restart(app: TestApp, name: &str, server: Server) {
    let db = app.state.db.clone();
    append(&db, "acme", 1..=20).await;
    append(&db, "globex", 1..=10).await;
    let received = server.received.clone();
    received.fail_next(4);
    let vars = vars_for(name, &server.url);
    let running = Running::start(&db, &vars).await;

    // While the destination fails: the error and the lag show.
    let mut seen_down = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen_down.is_none() && Instant::now() < deadline {
        let status = running.report(name).await;
        if status.last_error.is_some() && received.ids().is_empty() {
            seen_down = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let down = seen_down.expect("the failing destination reports an error");
    assert!(down.configured && down.lag.unwrap() > 0, "{down:?}");
    assert!(
        !down.endpoint.as_deref().unwrap().contains("secret")
            && !down.endpoint.as_deref().unwrap().contains(HEC_TOKEN)
    );

    until("the first 30 events", || received.ids().len() >= 30).await;
    append(&db, "acme", 21..=25).await;
    until("5 more", || received.ids().len() >= 35).await;
    running.stop().await;

    // Appended while the control plane is down; delivered after the restart, from the cursors.
    append(&db, "globex", 11..=18).await;
    append(&db, "acme", 26..=30).await;
    let db = restarted(&app).await;
    let running = Running::start(&db, &vars).await;
    until("every event after the restart", || {
        received.ids().len() >= 48
    })
    .await;
    let status = settled(&running, name).await;
    running.stop().await;

    assert_in_order(&received.ids(), &[("acme", 30), ("globex", 18)]);
    assert!(received.requests.load(std::sync::atomic::Ordering::SeqCst) >= 4 + 48 / 7);
    assert_eq!(status.events_flushed, 48, "{status:?}");
    assert_eq!(
        (status.events_dropped, status.lag),
        (0, Some(0)),
        "{status:?}"
    );
    // The outage stays visible as the last error, with its time; the last flush is later.
    assert!(
        status.last_error.is_some() && status.last_flush_ts.is_some(),
        "{status:?}"
    );
}

async fn splunk_receives_every_event_through_outage_and_restart(app: TestApp) {
    outage_and_restart(app, "splunk", splunk().await).await;
}

async fn datadog_receives_every_event_through_outage_and_restart(app: TestApp) {
    let server = datadog().await;
    let url = format!("{}/api/v2/logs", server.url);
    outage_and_restart(
        app,
        "datadog",
        Server {
            url,
            received: server.received,
        },
    )
    .await;
}

async fn sentinel_receives_every_event_through_outage_and_restart(app: TestApp) {
    let server = sentinel().await;
    let received = server.received.clone();
    outage_and_restart(app, "sentinel", server).await;
    // One token per process: cached between requests, fetched again after the restart.
    assert_eq!(
        received
            .tokens_issued
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

async fn webhook_receives_every_event_through_outage_and_restart(app: TestApp) {
    outage_and_restart(app, "webhook", webhook().await).await;
}

async fn findings_selection_delivers_only_findings_and_keeps_no_lag(app: TestApp) {
    let db = app.state.db.clone();
    append(&db, "acme", 1..=40).await;
    let server = webhook().await;
    let mut vars = vars_for("webhook", &server.url);
    vars.push(("INTENTGATE_WEBHOOK_SELECT", "findings".into()));
    let running = Running::start(&db, &vars).await;
    let findings: Vec<String> = (1..=40)
        .filter(|n| n % 5 == 0 || n % 5 == 3 || n % 7 == 0)
        .map(|n| format!("acme-{n:05}"))
        .collect();
    let received = server.received.clone();
    until("the findings", || received.ids().len() >= findings.len()).await;
    let status = settled(&running, "webhook").await;
    running.stop().await;
    assert_eq!(received.ids(), findings);
    assert_eq!(
        (status.events_flushed, status.lag),
        (findings.len() as u64, Some(0)),
        "{status:?}"
    );
}

async fn a_poison_event_is_dropped_and_counted_while_the_rest_arrive(app: TestApp) {
    let db = app.state.db.clone();
    let server = splunk().await;
    server
        .received
        .poison
        .lock()
        .unwrap()
        .push("acme-00004".into());
    // Alone in its batch, a refused event is not dropped: the destination may be at fault.
    append(&db, "acme", 4..=4).await;
    let running = Running::start(&db, &vars_for("splunk", &server.url)).await;
    let received = server.received.clone();
    until("a few refusals", || {
        received.requests.load(std::sync::atomic::Ordering::SeqCst) >= 3
    })
    .await;
    let status = running.report("splunk").await;
    assert_eq!(
        (status.events_dropped, status.lag),
        (0, Some(1)),
        "{status:?}"
    );
    assert!(
        status.last_error.as_deref().unwrap().contains("refused"),
        "{status:?}"
    );
    running.stop().await;

    // With others beside it, it is dropped, counted and named; the others arrive in order.
    sqlx::query("DELETE FROM audit_events")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_chain_heads")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_tree_nodes")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_tree_heads")
        .execute(db.pool())
        .await
        .unwrap();
    append(&db, "acme", 1..=12).await;
    let running = Running::start(&db, &vars_for("splunk", &server.url)).await;
    until("the other 11", || received.ids().len() >= 11).await;
    let status = settled(&running, "splunk").await;
    running.stop().await;
    let expected: Vec<String> = (1..=12)
        .filter(|n| *n != 4)
        .map(|n| format!("acme-{n:05}"))
        .collect();
    assert_eq!(received.ids(), expected);
    assert_eq!(
        (status.events_dropped, status.events_flushed),
        (1, 11),
        "{status:?}"
    );
    assert!(
        status.last_error.as_deref().unwrap().contains("acme-00004"),
        "{status:?}"
    );
}
