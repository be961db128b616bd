"""Audit ingest: events per second into one tenant's chain from four concurrent senders, through
FilterSync's `IngestAudit` as filters send them (batches of 256, one in flight per sender), on SQLite
and on Postgres (one control plane, and two replicas sharing the database).

`run()` returns a markdown section for BENCHMARKS.md (scripts/bench.py calls it). It needs the
`server`-profile builds of `intentgate-control-plane` and `intentgate-bench-ingest` (`make bench`
builds them). After each run the chain is verified: every event is in it once, in one unbroken chain.
`INTENTGATE_BENCH_INGEST_EVENTS` changes the event count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from contract.pg_cluster import Cluster  # noqa: E402
from e2e.control_plane import ControlPlane  # noqa: E402

SERVER = ROOT / "target" / "server" / "intentgate-control-plane"
CLIENT = ROOT / "target" / "server" / "intentgate-bench-ingest"
EVENTS = int(os.environ.get("INTENTGATE_BENCH_INGEST_EVENTS", "200000"))
SENDERS = 4
BATCH = 256
TENANT = "bench"
TARGETS = {"sqlite": 50_000, "postgres": 20_000}


def _measure(database_url: str, workdir: Path, replicas: int) -> dict:
    with ExitStack() as stack:
        planes = []
        for i in range(replicas):
            plane = ControlPlane(workdir / f"cp-{i}", database_url, binary=SERVER,
                                 extra_env={"RUST_LOG": "warn"})
            if planes:
                plane.master_key = planes[0].master_key
            stack.enter_context(plane)
            plane.start()
            planes.append(plane)
        argv = [str(CLIENT), "--senders", str(SENDERS), "--batch", str(BATCH), "--events", str(EVENTS),
                "--tenant", TENANT]
        for plane in planes:
            argv += ["--grpc", f"127.0.0.1:{plane.grpc_port}"]
        result = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        report = planes[0].verify(TENANT)
        if not report["verified"] or report["events_checked"] != EVENTS:
            raise SystemExit(f"the ingested chain does not hold every event once: {report}")
        return result


def _row(name: str, replicas: int, result: dict, target: int) -> str:
    rate = result["events_per_second"]
    trip = result["batch_round_trip"]
    verdict = "met" if rate >= target else "**not met**"
    return (f"| {name} | {replicas} | {rate:,.0f} | {trip['median_ms']:.1f} | {trip['p99_ms']:.1f} | "
            f"≥ {target:,}: {verdict} |")


def run() -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sqlite = _measure(f"sqlite://{workdir}/ingest.db?mode=rwc", workdir / "sqlite", 1)
        rows.append(_row("sqlite", 1, sqlite, TARGETS["sqlite"]))
        for replicas in (1, 2):
            cluster = Cluster()
            try:
                result = _measure(cluster.url, workdir / f"postgres-{replicas}", replicas)
            finally:
                cluster.stop()
            rows.append(_row("postgres", replicas, result, TARGETS["postgres"]))
    lines = [
        "## Audit ingest: one tenant, four senders",
        "",
        f"{EVENTS:,} tool-call events (about 700 bytes of canonical JSON each) into one tenant's chain "
        f"through FilterSync's `IngestAudit`, from {SENDERS} concurrent senders (each its own HTTP/2 "
        f"connection with one batch of {BATCH} in flight, as filters send them), spread over the control "
        "planes; events per second from the first send to the last acknowledgement. The batches queued "
        "behind a write share the next transaction (group commit): chain and Merkle hashes computed in "
        "the process, rows written in bulk. The chain is "
        "verified afterwards (every event once, no gap). Postgres is the benchmarks' throwaway cluster "
        "(`fsync`, `synchronous_commit` and `full_page_writes` off), so commits cost no disk flush.",
        "",
        "| database | control planes | events/s | batch round trip p50 (ms) | p99 (ms) | target |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
