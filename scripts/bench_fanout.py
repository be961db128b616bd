"""Fan-out between replicas: a change made through control plane A, acknowledged by the filters that
follow control plane B. Two control planes share one Postgres, with their poll turned off
(`INTENTGATE_SYNC_POLL_MS=0`), so B can only learn of A's changes by `LISTEN`/`NOTIFY`; one Envoy
(2 workers, so 3 filter VMs incl. its main thread) follows B."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench_propagation import SERVER_BINARY, all_acked, envoy_config, percentile
from contract.pg_cluster import Cluster
from e2e.control_plane import ControlPlane
from e2e.envoy import start_envoy

CHANGES = 50
FILTERS = 3
TARGET_P99_MS = 100
TENANT = "bench"


def measure(a: ControlPlane, b: ControlPlane, jti: str) -> float:
    """Milliseconds from just before the revocation through A to the last acknowledgement at B."""
    started = time.perf_counter()
    a.revoke(jti)
    version = a.filters()["state_version"]
    while not all_acked(b, FILTERS, version):
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def run() -> str:
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            no_poll = {"INTENTGATE_SYNC_POLL_MS": "0", "RUST_LOG": "warn"}
            a = ControlPlane(workdir / "a", cluster.url, binary=SERVER_BINARY, extra_env=no_poll)
            b = ControlPlane(workdir / "b", cluster.url, binary=SERVER_BINARY, extra_env=no_poll,
                             master_key=a.master_key)
            with a, b:
                a.start()
                b.start()
                # The upstream is never called: only the filters' sync matters here.
                with start_envoy(envoy_config(b, 9), workdir / "envoy"):
                    deadline = time.monotonic() + 60
                    while not all_acked(b, FILTERS, b.filters()["state_version"]):
                        if time.monotonic() > deadline:
                            raise SystemExit("the filters did not sync")
                        time.sleep(0.05)
                    times = []
                    for _ in range(CHANGES):
                        jti = a.mint("bench-agent", TENANT)["jti"]
                        times.append(measure(a, b, jti))
    finally:
        cluster.stop()
    p99 = percentile(times, 99)
    verdict = "met" if p99 <= TARGET_P99_MS else "**not met**"
    return f"""## Fan-out between replicas: a change on A, acknowledged at B

Two control planes on one Postgres, their poll turned off (`INTENTGATE_SYNC_POLL_MS=0`), so B learns of
A's changes only by `LISTEN`/`NOTIFY`; one Envoy (3 filter VMs) follows B. {CHANGES} revocations made
through A; time from just before the admin call to A to the moment every filter VM of B has
acknowledged the new state version (B's `GET /v1/admin/filters`, polled every 2 ms).

| change | p50 (ms) | p99 (ms) | max (ms) |
|---|---:|---:|---:|
| revoke on A, acknowledged at B | {statistics.median(times):.0f} | {p99:.0f} | {max(times):.0f} |

Target: p99 ≤ {TARGET_P99_MS} ms — {verdict}.
"""


if __name__ == "__main__":
    print(run())
