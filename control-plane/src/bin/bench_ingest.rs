//! `intentgate-bench-ingest`: audit events into one tenant's chain through FilterSync's
//! `IngestAudit`, the way a fleet of filters sends them: `--senders` concurrent senders, each its own
//! HTTP/2 connection with one batch of `--batch` events in flight, spread over the given control
//! planes. The batches are encoded before the clock starts, so what is timed is the control plane.
//! Prints one JSON line: events per second from the first send to the last acknowledgement, and the
//! batches' round-trip times.
//!
//! ```text
//! intentgate-bench-ingest --grpc 127.0.0.1:8082 [--grpc ADDR ...] [--senders 4] [--batch 256]
//!                         [--events 200000] [--first 1] [--tenant bench]
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use intentgate_proto::v1::filter_sync_client::FilterSyncClient;
use intentgate_proto::v1::{AuditBatch, AuditRecord};
use serde_json::json;
use tonic::transport::Channel;

#[path = "bench/sample.rs"]
mod sample;

struct Args {
    grpc: Vec<String>,
    senders: usize,
    batch: usize,
    events: u64,
    first: u64,
    tenant: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        grpc: Vec::new(),
        senders: 4,
        batch: 256,
        events: 200_000,
        first: 1,
        tenant: "bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--grpc" => args.grpc.push(value),
            "--senders" => args.senders = value.parse().context("--senders")?,
            "--batch" => args.batch = value.parse().context("--batch")?,
            "--events" => args.events = value.parse().context("--events")?,
            "--first" => args.first = value.parse().context("--first")?,
            "--tenant" => args.tenant = value,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.grpc.is_empty() || args.senders == 0 || args.batch == 0 {
        bail!("--grpc is required; --senders and --batch must be at least 1");
    }
    Ok(args)
}

/// The batches of one sender: every `senders`-th batch of the run, so the senders interleave.
fn batches(args: &Args, sender: usize) -> anyhow::Result<Vec<AuditBatch>> {
    let numbers: Vec<u64> = (args.first..args.first + args.events).collect();
    numbers
        .chunks(args.batch)
        .skip(sender)
        .step_by(args.senders)
        .map(|chunk| {
            let events = chunk
                .iter()
                .map(|n| {
                    let event = sample::event(&args.tenant, *n);
                    Ok(AuditRecord {
                        event_json: serde_json::to_string(&event)?,
                        id: event.id,
                        tenant: event.tenant,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(AuditBatch {
                filter_id: format!("bench-sender-{sender}"),
                events,
                dropped: 0,
            })
        })
        .collect()
}

/// Sends each batch and waits for its acknowledgement; returns each batch's round trip.
async fn send(
    mut client: FilterSyncClient<Channel>,
    batches: Vec<AuditBatch>,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(batches.len());
    for batch in batches {
        let expected = batch.events.len();
        let started = Instant::now();
        let ack = client.ingest_audit(batch).await?.into_inner();
        times.push(started.elapsed());
        if ack.stored_ids.len() != expected || !ack.rejected_ids.is_empty() {
            bail!(
                "a batch of {expected} was acknowledged with {} stored and {} rejected",
                ack.stored_ids.len(),
                ack.rejected_ids.len()
            );
        }
    }
    Ok(times)
}

fn millis(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len().saturating_sub(1)) as f64 * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({"median_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut senders = Vec::with_capacity(args.senders);
    for sender in 0..args.senders {
        let addr = &args.grpc[sender % args.grpc.len()];
        let client = FilterSyncClient::connect(format!("http://{addr}"))
            .await
            .with_context(|| format!("cannot reach FilterSync at {addr}"))?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        senders.push((client, batches(&args, sender)?));
    }
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(client, batches)| tokio::spawn(send(client, batches)))
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.context("sender")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let line = json!({
        "events": args.events,
        "senders": args.senders,
        "batch": args.batch,
        "control_planes": args.grpc.len(),
        "seconds": seconds,
        "events_per_second": (args.events as f64 / seconds).round(),
        "batch_round_trip": millis(times),
    });
    println!("{line}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(parse_args()?).await
}
