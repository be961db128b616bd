"""Audit-chain verify throughput over 1,000,000 stored events, on SQLite and on a throwaway Postgres.

`run()` returns a markdown section for BENCHMARKS.md (scripts/bench.py calls it). It needs the
`server`-profile build of `intentgate-bench-verify` (`make bench` builds it). The chain is filled
through the control plane's normal append path, then verified three times; the best run counts.
`INTENTGATE_BENCH_VERIFY_EVENTS` changes the event count.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "contract"))

from pg_cluster import Cluster  # noqa: E402

BINARY = ROOT / "target" / "server" / "intentgate-bench-verify"
EVENTS = int(os.environ.get("INTENTGATE_BENCH_VERIFY_EVENTS", "1000000"))


def _measure(url):
    out = subprocess.run(
        [str(BINARY), "--database-url", url, "--events", str(EVENTS), "--runs", "3"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def _row(result):
    best = min(result["verify_ms"])
    cpu = result["verify_cpu_ms"][result["verify_ms"].index(best)]
    per_cpu_second = result["events"] * 1000 // max(cpu, 1)
    return (f"| {result['backend']} | {result['events']:,} | {best} ms | "
            f"{result['events_per_second']:,} | {cpu} ms ({per_cpu_second:,}/CPU-s) | "
            f"{result['fill_seconds']:.0f} s |")


def run() -> str:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(_measure(f"sqlite://{tmp}/bench.db?mode=rwc"))
    cluster = Cluster()
    try:
        results.append(_measure(cluster.url))
    finally:
        cluster.stop()
    lines = [
        "## Audit chain verify",
        "",
        f"`GET /v1/admin/audit/verify` over one tenant's chain of {EVENTS:,} stored tool-call events "
        f"(about 800 bytes of canonical JSON each), {results[0]['threads']} cores. Each event's hash is "
        "recomputed from its stored body and `prev_hash`, every link and position checked; ranges of "
        "the chain are checked in parallel, one connection each. Best of three runs; CPU is the "
        "process's CPU time in that run (on a shared machine, wall time alone understates the code).",
        "",
        "| database | events | verify | events/s | CPU | fill (append path) |",
        "|---|---|---|---|---|---|",
        *[_row(r) for r in results],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
