"""Verifiable audit at scale: inclusion proof generation and verification for a tenant of
10,000,000 events, and delivery throughput to a webhook receiver.

`run()` returns a markdown section for BENCHMARKS.md (scripts/bench.py calls it). It needs the
`server`-profile build of `intentgate-bench-audit` (`make bench` builds it). The tree is stored by
a bulk loader exactly as the append path stores it (every complete subtree by in-order position,
SQLite); `INTENTGATE_BENCH_AUDIT_LEAVES` and `INTENTGATE_BENCH_AUDIT_EVENTS` change the sizes.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "target" / "server" / "intentgate-bench-audit"
LEAVES = int(os.environ.get("INTENTGATE_BENCH_AUDIT_LEAVES", "10000000"))
EVENTS = int(os.environ.get("INTENTGATE_BENCH_AUDIT_EVENTS", "50000"))
TARGET_US = 1000


def _measure():
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [str(BINARY), "--dir", tmp, "--leaves", str(LEAVES), "--samples", "1000", "--events", str(EVENTS)],
            check=True, capture_output=True, text=True,
        )
    return json.loads(out.stdout)


def _met(us):
    return "met" if us <= TARGET_US else "**not met**"


def run() -> str:
    result = _measure()
    proofs, delivery = result["proofs"], result["delivery"]
    gen, ver = proofs["generate"], proofs["verify"]
    lines = [
        "## Verifiable audit: Merkle proofs and delivery",
        "",
        f"Inclusion proofs for {proofs['samples']:,} events spread over one tenant's tree of "
        f"{proofs['leaves']:,} events (SQLite, {proofs['database_bytes'] / 2**30:.1f} GiB of stored subtrees, "
        f"bulk-loaded in {proofs['fill_seconds']:.0f} s). Generation is the control plane's proof code "
        "(event lookup; the ~log2(n) subtrees of the path, those of 256 events and more from the in-memory "
        "cache of upper levels, the rest in one query; both reads in one blocking task on a read-only SQLite "
        "connection; folding); verification is the core's RFC 9162 check "
        "against the signed tree head. Measured on events no proof had touched, after as many others warmed "
        "the control plane up.",
        "",
        "| | median | p99 | max | target ≤ 1 ms |",
        "|---|---:|---:|---:|---|",
        f"| generate | {gen['median_us']:.0f} µs | {gen['p99_us']:.0f} µs | {gen['max_us']:.0f} µs | {_met(gen['p99_us'])} (p99) |",
        f"| verify | {ver['median_us']:.1f} µs | {ver['p99_us']:.1f} µs | {ver['max_us']:.1f} µs | {_met(ver['p99_us'])} (p99) |",
        "",
        f"Delivery to a webhook receiver on loopback that checks every HMAC signature: {delivery['events']:,} "
        f"events appended through the normal path, batches of {delivery['batch']}, cursors committed per batch: "
        f"**{delivery['events_per_second']:,.0f} events/s** ({delivery['seconds']:.2f} s).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
