//! `intentgate-bench-audit`: the verifiable audit log at scale. Prints one JSON line.
//!
//! - proofs: a tenant's Merkle tree of `--leaves` events (10,000,000 by default) is stored as the
//!   append path stores it (every complete subtree, keyed by in-order position) by a bulk loader,
//!   with twice `--samples` real events placed at random positions; then inclusion proofs for those
//!   events are generated through the control plane's proof code and verified with the core's: the
//!   first half warms up, the second half is timed. The other leaves are synthetic (no event rows), so the chain is not walkable.
//! - delivery: `--events` events appended through the normal path, then delivered to an
//!   in-process webhook receiver that checks every signature; events per second until all arrive.
//!
//! ```text
//! intentgate-bench-audit --dir DIR [--leaves 10000000] [--samples 1000] [--events 50000]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use intentgate_control_plane::audit::{self, tree};
use intentgate_control_plane::delivery::{self, DeliveryConfig};
use intentgate_control_plane::store::Db;
use intentgate_core::audit::AuditEvent;
use intentgate_core::audit::merkle::{CompactRange, leaf_hash};
use serde_json::json;

#[path = "bench/sample.rs"]
mod sample;

const TENANT: &str = "bench";
const SECRET: &str = "bench-webhook-secret";

struct Args {
    dir: PathBuf,
    leaves: u64,
    samples: usize,
    events: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        dir: PathBuf::new(),
        leaves: 10_000_000,
        samples: 1000,
        events: 50_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = value.into(),
            "--leaves" => args.leaves = value.parse().context("--leaves")?,
            "--samples" => args.samples = value.parse().context("--samples")?,
            "--events" => args.events = value.parse().context("--events")?,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.dir.as_os_str().is_empty() || args.samples == 0 || args.leaves < args.samples as u64 {
        bail!("--dir is required, and --leaves must be at least --samples (at least 1)");
    }
    Ok(args)
}

/// Stores the tree of `leaves` leaves (sample events at `positions`) as the append path would.
fn fill_tree(
    path: &std::path::Path,
    leaves: u64,
    positions: &HashMap<u64, String>,
) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )?;
    let mut range = CompactRange::new(0);
    let mut pending: Vec<(i64, [u8; 32])> = Vec::with_capacity(1 << 20);
    let flush =
        |conn: &mut rusqlite::Connection, rows: &mut Vec<(i64, [u8; 32])>| -> anyhow::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_tree_nodes (tenant, node, hash) VALUES (?1, ?2, ?3)",
                )?;
                for (key, hash) in rows.iter() {
                    insert.execute(rusqlite::params![TENANT, key, &hash[..]])?;
                }
            }
            tx.commit()?;
            rows.clear();
            Ok(())
        };
    for i in 0..leaves {
        let leaf = match positions.get(&i) {
            Some(body) => leaf_hash(body.as_bytes()),
            None => leaf_hash(&i.to_be_bytes()),
        };
        let mut failed = None;
        range.append(leaf, |id, hash| match tree::nodes::key(id) {
            Ok(k) => pending.push((k, *hash)),
            Err(e) => failed = Some(e),
        })?;
        if let Some(e) = failed {
            bail!("{e}");
        }
        if pending.len() >= 1 << 20 {
            flush(&mut conn, &mut pending)?;
        }
    }
    flush(&mut conn, &mut pending)?;
    let root = range.root()?;
    conn.execute(
        "INSERT INTO audit_tree_heads (tenant, size, root) VALUES (?1, ?2, ?3)",
        rusqlite::params![TENANT, i64::try_from(leaves)?, &root[..]],
    )?;
    let tx = conn.transaction()?;
    for (i, body) in positions {
        let c = audit::columns::Columns::of_body(body.as_bytes())
            .context("a sampled event's body lacks its columns")?;
        tx.execute(
            "INSERT INTO audit_events (seq, prev_hash, hash, body, tenant, id, ts, event, \
             decision, tool, agent_id) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                i64::try_from(*i)? + 1,
                &[0u8; 32][..],
                body,
                c.tenant,
                c.id,
                c.ts,
                c.event,
                c.decision,
                c.tool,
                c.agent_id
            ],
        )?;
    }
    tx.commit()?;
    // Written with synchronous = OFF: flush the GiB to disk now, or the kernel's writeback of it
    // would stall the timed proofs, which a deployment's long-stored tree never sees.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

fn micros(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        samples
            .get(((samples.len() - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    json!({"median_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0)})
}

async fn proofs(args: &Args) -> anyhow::Result<serde_json::Value> {
    let path = args.dir.join("proofs.db");
    let db = Db::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut x = u64::from_le_bytes(seed) | 1;
    let mut positions = HashMap::new();
    while positions.len() < 2 * args.samples {
        // xorshift: spread the samples over the whole tree.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % args.leaves;
        positions.insert(i, sample::event(TENANT, i).canonical());
    }
    let started = Instant::now();
    fill_tree(&path, args.leaves, &positions)?;
    let fill_seconds = started.elapsed().as_secs_f64();
    let keys = intentgate_control_plane::keys::Keys::from_seed(&[7u8; 32])?;
    let head = tree::issue(&db, keys.issuer(), TENANT).await?;
    let cache = tree::UpperNodes::default();
    let (mut generate, mut check) = (Vec::new(), Vec::new());
    // Half the events warm the control plane (page cache, upper subtrees in memory); the other
    // half, events no proof has touched yet, are measured.
    let sampled: Vec<u64> = positions.keys().copied().collect();
    for (round, events) in sampled.chunks(args.samples).enumerate() {
        for i in events {
            let id = format!("bench-{i:012}");
            let t = Instant::now();
            let proof =
                tree::proofs::inclusion(&db, &cache, TENANT, &id, Some(args.leaves)).await?;
            let generated = t.elapsed();
            let t = Instant::now();
            proof.verify(&head.head.root_hash)?;
            let verified = t.elapsed();
            if round == 1 {
                generate.push(generated.as_secs_f64() * 1e6);
                check.push(verified.as_secs_f64() * 1e6);
            }
        }
    }
    db.close().await;
    let size = std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or_default();
    Ok(json!({
        "leaves": args.leaves, "samples": args.samples, "fill_seconds": fill_seconds,
        "database_bytes": size, "generate": micros(generate), "verify": micros(check),
    }))
}

async fn receive(
    State(count): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let ts: i64 = headers
        .get("x-intentgate-timestamp")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let expected = delivery::webhook::signature(SECRET.as_bytes(), ts, &body);
    if headers
        .get("x-intentgate-signature")
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    count.fetch_add(
        value["events"].as_array().map_or(0, Vec::len),
        Ordering::SeqCst,
    );
    StatusCode::OK
}

async fn delivery_rate(args: &Args) -> anyhow::Result<serde_json::Value> {
    let db = Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        args.dir.join("delivery.db").display()
    ))
    .await?;
    for chunk in (0..args.events as u64).collect::<Vec<_>>().chunks(5000) {
        let batch: Vec<AuditEvent> = chunk.iter().map(|n| sample::event(TENANT, *n)).collect();
        audit::append(&db, &batch).await?;
    }
    let count = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(count.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let vars: HashMap<&str, String> = [
        ("INTENTGATE_WEBHOOK_URL", url),
        ("INTENTGATE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("INTENTGATE_DELIVERY_POLL_MS", "10".to_owned()),
    ]
    .into_iter()
    .collect();
    let config =
        DeliveryConfig::from_lookup(&|name| vars.get(name).cloned()).map_err(anyhow::Error::msg)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let (_configured, tasks) =
        delivery::start(&db, &config, &stopped).map_err(anyhow::Error::msg)?;
    while count.load(Ordering::SeqCst) < args.events {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("delivery did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(json!({
        "events": args.events, "batch": config.settings.batch_size, "seconds": seconds,
        "events_per_second": (args.events as f64 / seconds).round(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let proofs = proofs(&args).await?;
    let delivery = delivery_rate(&args).await?;
    println!("{}", json!({"proofs": proofs, "delivery": delivery}));
    Ok(())
}
