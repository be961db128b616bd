//! `intentgate-bench-verify`: fills a tenant's chain to N events through the normal append path
//! (skipped when already there) and times verify over it. Prints one JSON line.
//!
//! ```text
//! intentgate-bench-verify --database-url URL [--events 1000000] [--runs 3] [--tenant bench]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use intentgate_control_plane::audit::{self, verify};
use intentgate_control_plane::store::Db;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use serde_json::json;
use sqlx::Row;

const BATCH: usize = 5000;

struct Args {
    url: String,
    events: u64,
    runs: usize,
    tenant: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: String::new(),
        events: 1_000_000,
        runs: 3,
        tenant: "bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--database-url" => args.url = value,
            "--events" => args.events = value.parse().context("--events")?,
            "--runs" => args.runs = value.parse().context("--runs")?,
            "--tenant" => args.tenant = value,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.url.is_empty() {
        bail!("--database-url is required");
    }
    Ok(args)
}

/// A tool-call event shaped like the filter's, about 700 bytes of canonical JSON.
fn event(tenant: &str, n: u64) -> AuditEvent {
    let decision = if n.is_multiple_of(7) {
        AuditDecision::Deny
    } else {
        AuditDecision::Allow
    };
    let ms = 1_781_444_520_000 + i64::try_from(n).unwrap_or_default();
    let mut e = AuditEvent::new(format!("bench-{n:012}"), ms, EventKind::ToolCall, decision);
    let args = json!({"invoice_id": n, "vendor": "acme-supplies", "currency": "EUR", "note": "quarterly run"});
    e = e.with_tool("read_invoice", args.as_object());
    e.tenant = tenant.into();
    e.agent_id = "agent-finance-bot-7".into();
    e.session_id = "c0ffee00-1234-4abc-9def-000000000042".into();
    e.capability_token_id = "01J2ZK3Q4R5S6T7V8W9XAYBZC0".into();
    e.root_capability_token_id = "01J2ZK3Q4R5S6T7V8W9XAYBZC0".into();
    e.caveat_count = 2;
    e.intent_summary = "reconcile the March invoices for acme-supplies".into();
    e.latency_ms = 0.412;
    e.remote_ip = "10.20.30.40".into();
    e.upstream_status = 200;
    e.method = "tools/call".into();
    e.rule = "reads".into();
    e
}

/// CPU time this process has used so far, in milliseconds (Linux; 0 elsewhere). With the wall time
/// it tells how much of the machine verify got, which matters on a shared machine.
fn cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) * 10
}

async fn run(args: Args) -> anyhow::Result<()> {
    let db = Db::connect(&args.url).await?;
    let stored: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_events WHERE tenant = $1")
            .bind(&args.tenant)
            .fetch_one(db.pool())
            .await?
            .try_get("n")?;
    let mut next = u64::try_from(stored).unwrap_or_default() + 1;
    let fill_started = Instant::now();
    while next <= args.events {
        let end = (next + BATCH as u64).min(args.events + 1);
        let batch: Vec<AuditEvent> = (next..end).map(|n| event(&args.tenant, n)).collect();
        audit::append(&db, &batch).await?;
        next = end;
    }
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    // Verify also checks the tenant's latest signed tree head; sign one as a deployment would.
    let keys = intentgate_control_plane::keys::Keys::from_seed(&[7u8; 32])?;
    audit::tree::issue(&db, keys.issuer(), &args.tenant).await?;
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut checked = 0;
    for _ in 0..args.runs.max(1) {
        let cpu_before = cpu_ms();
        let report = verify::verify(&db, keys.issuer(), &args.tenant).await?;
        cpu.push(cpu_ms().saturating_sub(cpu_before));
        if !report.verified {
            bail!("the bench chain does not verify: {:?}", report.reason);
        }
        checked = report.events_checked;
        times.push(report.duration_ms);
    }
    let best = times.iter().copied().min().unwrap_or_default().max(1);
    let line = json!({
        "backend": db.backend().name(),
        "events": checked,
        "fill_seconds": fill_seconds,
        "verify_ms": times,
        "verify_cpu_ms": cpu,
        "events_per_second": checked * 1000 / best,
        "threads": std::thread::available_parallelism().map_or(1, usize::from),
    });
    println!("{line}");
    db.close().await;
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("runtime")?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("intentgate-bench-verify: {err:#}");
            ExitCode::FAILURE
        }
    }
}
