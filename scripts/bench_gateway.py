"""Plain Envoy and Envoy with the IntentGate filter, side by side in one run, in front of the same upstream:
`tools/call` with a valid token (max_calls counted) and the demo policy. Reports the throughput ratio, the
latency the filter adds at p50/p99, and Envoy's memory with and without the filter. A third Envoy runs an
empty wasm filter that holds requests the same way (filter/baseline), so the added cost splits into
Envoy's wasm machinery and IntentGate's own work.

The upstream is a second Envoy answering a fixed JSON-RPC result, so the measurement is the gateway's
own cost. The gateway Envoy runs one worker pinned to CPU 0; wrk and the upstream share CPU 1."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from e2e.envoy import EnvoyConfig, PreparedBootstrap, start_envoy
from e2e.gateway import DEMO_POLICY, Issuer, plugin_config, tenant_config, wasm_filter

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / "target" / "server" / "intentgate"
BASELINE = REPO / "target" / "wasm32-wasip1" / "release" / "intentgate_baseline_filter.wasm"
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}}
DURATION = "10s"
ROUNDS = 3

def upstream_bootstrap() -> PreparedBootstrap:
    answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "hello"}]}})
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": answer}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "upstream",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return PreparedBootstrap({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "gateway",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        }]},
    })


def wrk(url: str, token: str, connections: int, script_dir: Path) -> tuple[float, float, float]:
    """(requests/s, p50 µs, p99 µs) from one wrk run pinned to CPU 1."""
    script = script_dir / "call.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} failed responses:\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]

    return rps, pct("50"), pct("99")


def filter_p50s(envoy) -> dict[str, float]:
    """p50 of the filter's own histograms (µs): its callbacks in all, token verify, policy eval."""
    body = envoy.admin_get("/stats", format="json", filter="intentgate").json()
    out: dict[str, float] = {}
    for stat in body.get("stats", []):
        for histogram in stat.get("histograms", {}).get("computed_quantiles", []):
            name = histogram["name"].rsplit(".", 1)[-1]
            quantiles = stat["histograms"]["supported_quantiles"]
            p50 = histogram["values"][quantiles.index(50)].get("cumulative")
            if p50 is not None:
                out[name] = p50
    return out


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def pin(pid: int, cpu: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], capture_output=True, check=True)


def run() -> str:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench installs it (apt-get install wrk)")
    issuer = Issuer.generate(cli_path=CLI)
    token = issuer.token("bench-agent", "bench", tools=["echo", "get-*"], max_calls=10**12)
    plugin = plugin_config([issuer.public_key], {"bench": tenant_config(DEMO_POLICY.read_text())})
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with start_envoy(upstream_bootstrap(), tmp_path / "upstream", concurrency=1) as upstream:
            pin(upstream.pid, "1")
            plain_cfg = EnvoyConfig(upstream_port=upstream.port)
            empty_cfg = EnvoyConfig(upstream_port=upstream.port, http_filters=[wasm_filter({}, wasm=BASELINE, vm_id="baseline")])
            filtered_cfg = EnvoyConfig(upstream_port=upstream.port, http_filters=[wasm_filter(plugin)])
            with start_envoy(plain_cfg, tmp_path / "plain", concurrency=1, log_level="warning") as plain, \
                 start_envoy(empty_cfg, tmp_path / "empty", concurrency=1, log_level="warning") as empty, \
                 start_envoy(filtered_cfg, tmp_path / "filter", concurrency=1, log_level="warning", timeout=180) as filtered:
                gateways = (("plain", plain), ("empty", empty), ("filter", filtered))
                for _, envoy in gateways:
                    pin(envoy.pid, "0")
                    wrk(envoy.mcp_url, token, 4, tmp_path)  # warm up: token cache, connections, JIT
                results: dict[str, dict[str, list[float]]] = {name: {} for name, _ in gateways}
                for _ in range(ROUNDS):
                    for name, envoy in gateways:
                        _, p50, p99 = wrk(envoy.mcp_url, token, 1, tmp_path)
                        rps, _, _ = wrk(envoy.mcp_url, token, 16, tmp_path)
                        r = results[name]
                        r.setdefault("p50", []).append(p50)
                        r.setdefault("p99", []).append(p99)
                        r.setdefault("rps", []).append(rps)
                memory = {name: rss_mib(envoy.pid) for name, envoy in gateways}
                inside = filter_p50s(filtered)
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    ratio = med["filter"]["rps"] / med["plain"]["rps"]
    added50 = med["filter"]["p50"] - med["plain"]["p50"]
    added99 = med["filter"]["p99"] - med["plain"]["p99"]
    machinery50 = med["empty"]["p50"] - med["plain"]["p50"]
    empty_ratio = med["empty"]["rps"] / med["plain"]["rps"]
    verdict = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    return f"""## Gateway: plain Envoy vs Envoy + IntentGate filter

`tools/call` (echo) with a valid token carrying `max_calls` (counted in shared data) and the demo policy
(envoy/demo-policy.rego), same fixed-answer upstream, one run, {ROUNDS} alternating rounds of {DURATION}
each, medians. Gateway Envoy: 1 worker pinned to CPU 0; wrk (1 thread) and the upstream on CPU 1.

| | plain Envoy | Envoy + empty wasm filter | Envoy + IntentGate filter | IntentGate vs plain |
|---|---:|---:|---:|---:|
| throughput, 16 connections (req/s) | {med['plain']['rps']:,.0f} | {med['empty']['rps']:,.0f} ({empty_ratio:.2f}×) | {med['filter']['rps']:,.0f} | **{ratio:.2f}×** |
| latency p50, 1 connection (µs) | {med['plain']['p50']:.0f} | {med['empty']['p50']:.0f} (+{machinery50:.0f} µs) | {med['filter']['p50']:.0f} | **+{added50:.0f} µs** |
| latency p99, 1 connection (µs) | {med['plain']['p99']:.0f} | {med['empty']['p99']:.0f} | {med['filter']['p99']:.0f} | +{added99:.0f} µs |
| Envoy resident memory (MiB) | {memory['plain']:.0f} | {memory['empty']:.0f} | {memory['filter']:.0f} | +{memory['filter'] - memory['plain']:.0f} MiB |

The empty wasm filter (filter/baseline) does nothing but hold each request's headers until its body is in,
as IntentGate's filter does: its column is what Envoy's wasm machinery costs before any check runs.

Where the added time goes (filter's own histograms, p50 over the whole run): {inside.get('filter_us', 0):.0f} µs inside
the filter's callbacks (`intentgate.filter_us`), of which token verify (cached) {inside.get('verify_us', 0):.0f} µs and
the checks after it (tool caveat, intent, policy, budget: `intentgate.eval_us`) {inside.get('eval_us', 0):.0f} µs. Each header or property read from the filter
is a host call of about 4–9 µs in this Envoy (measured), so the filter reads the request headers once.

Targets (issue 3): throughput ≥ 0.85× plain — {verdict(ratio >= 0.85)}; ≤ 50 µs added at p50 — {verdict(added50 <= 50)}.
"""
