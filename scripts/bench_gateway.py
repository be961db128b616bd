"""Envoy gateways side by side in one run, in front of the same upstream: `tools/call` with a valid
credential. Six gateways: plain Envoy; an empty wasm filter that holds requests the way ours does
(filter/baseline), Envoy's wasm machinery alone; the IntentGate filter (token with max_calls counted,
the demo policy); the empty native module holding requests the same way (filter/native-baseline), the
floor for any buffering dynamic module; the native IntentGate module with the same configuration; and
Envoy's own C++ chain (jwt_authn with an EdDSA JWT, `envoy.filters.http.mcp`,
RBAC on the tool name), which checks less. Reports throughput, the latency each adds at p50/p99, and
Envoy's memory at 1 and at 4 workers.

The upstream is a second Envoy answering a fixed JSON-RPC result, so the measurement is the gateway's
own cost; it reads each request whole before answering (a buffer filter), so it keeps its connections
alive and the gateways reuse pooled upstream connections, as in a real mesh (answering before the body,
it closed every connection, and each request paid a TCP connect). Besides req/s, each throughput run
reads the gateway's CPU time (/proc) and request count, and reports CPU µs per request: on a shared
virtual machine whose neighbours take CPU, that ratio holds steadier than req/s. Each gateway runs one worker pinned to CPU 0; wrk and the upstream share CPU 1. Memory is
measured on gateways started again with 1 and with 4 workers, after the same short load."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from e2e.envoy import EnvoyConfig, PreparedBootstrap, start_envoy
from e2e.gateway import DEMO_POLICY, Issuer, native_filter, plugin_config, tenant_config, wasm_filter
from e2e.native import NATIVE_DIR, NATIVE_ENV, baseline_filter, require_module

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / "target" / "server" / "intentgate"
BASELINE = REPO / "target" / "wasm32-wasip1" / "release" / "intentgate_baseline_filter.wasm"
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}}
DURATION = "10s"
ROUNDS = 3
GATEWAYS = ("plain", "empty", "filter", "empty-native", "native", "chain")
INTENTGATE = ("filter", "native")
"""The gateways running IntentGate, whose own histograms are read."""


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
        "http_filters": [
            {"name": "envoy.filters.http.buffer", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 65536}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return PreparedBootstrap({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "gateway",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        }]},
    })


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class EdDsaIssuer:
    """An Ed25519 key, its JWKS for Envoy's jwt_authn, and JWTs it signs."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.jwks = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "bench", "x": b64url(raw)}]})

    def jwt(self, subject: str) -> str:
        header = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": "bench"}).encode())
        now = int(time.time())
        claims = {"iss": "bench-issuer", "sub": subject, "aud": "tools", "iat": now, "exp": now + 3600}
        payload = b64url(json.dumps(claims).encode())
        signature = self.key.sign(f"{header}.{payload}".encode())
        return f"{header}.{payload}.{b64url(signature)}"


def cpp_chain(issuer: EdDsaIssuer) -> list[dict[str, Any]]:
    """Envoy's own filters: the JWT verified, the MCP body parsed into metadata, the tool name checked."""
    jwt_authn = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": {
                "issuer": "bench-issuer",
                "audiences": ["tools"],
                "local_jwks": {"inline_string": issuer.jwks},
                "forward": False,
                "payload_in_metadata": "jwt_payload",
            }},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }
    mcp = {"name": "envoy.filters.http.mcp", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp"}}
    tool_is = lambda name: {  # noqa: E731
        "metadata": {"filter": "envoy.filters.http.mcp", "path": [{"key": "params"}, {"key": "name"}], "value": {"string_match": {"exact": name}}}
    }
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"safe-tools": {
                "permissions": [{"or_rules": {"rules": [tool_is("echo"), tool_is("get-sum")]}}],
                "principals": [{"metadata": {
                    "filter": "envoy.filters.http.jwt_authn",
                    "path": [{"key": "jwt_payload"}, {"key": "sub"}],
                    "value": {"string_match": {"exact": "bench-agent"}},
                }}],
            }}},
        },
    }
    return [jwt_authn, mcp, rbac]


def write_script(path: Path, credential: str, body: dict[str, Any]) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        # What a Streamable HTTP client sends; Envoy's MCP filter parses only such a POST.
        'wrk.headers["Accept"] = "application/json, text/event-stream"\n'
        f'wrk.headers["Authorization"] = "Bearer {credential}"\n'
    )
    return path


def wrk(url: str, script: Path, connections: int, duration: str = DURATION) -> tuple[float, float, float]:
    """(requests/s, p50 µs, p99 µs) from one wrk run pinned to CPU 1."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "-s", str(script), url],
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
    """p50 of the filter's own histograms (µs), sampled exchanges: the deciding callback, token verify, checks."""
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


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_served(envoy) -> int:
    text = envoy.admin_get("/stats", filter="^http.gateway.downstream_rq_total$").text
    return int(text.split(":", 1)[1])


def pin(pid: int, cpu: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], capture_output=True, check=True)


def verify_chain(envoy, tmp: Path, jwt: str) -> None:
    """The C++ chain must refuse what it should, or its column measures nothing."""
    denied = write_script(tmp / "denied.lua", jwt, {**BODY, "params": {"name": "get-env", "arguments": {}}})
    out = subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", str(denied), envoy.mcp_url], capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" not in out:
        raise RuntimeError(f"the C++ chain let a tool outside its RBAC policy through:\n{out}")


def run() -> str:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench installs it (apt-get install wrk)")
    require_module(NATIVE_DIR, "intentgate_native")
    require_module(NATIVE_DIR, "intentgate_native_baseline")
    issuer = Issuer.generate(cli_path=CLI)
    token = issuer.token("bench-agent", "bench", tools=["echo", "get-*"], max_calls=10**12)
    plugin = plugin_config([issuer.public_key], {"bench": tenant_config(DEMO_POLICY.read_text(), cli_path=CLI)})
    jwt_issuer = EdDsaIssuer()
    jwt = jwt_issuer.jwt("bench-agent")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        scripts = {
            "plain": write_script(tmp_path / "token.lua", token, BODY),
            "empty": write_script(tmp_path / "token.lua", token, BODY),
            "filter": write_script(tmp_path / "token.lua", token, BODY),
            "empty-native": write_script(tmp_path / "token.lua", token, BODY),
            "native": write_script(tmp_path / "token.lua", token, BODY),
            "chain": write_script(tmp_path / "jwt.lua", jwt, BODY),
        }
        with start_envoy(upstream_bootstrap(), tmp_path / "upstream", concurrency=1) as upstream:
            pin(upstream.pid, "1")
            configs = {
                "plain": EnvoyConfig(upstream_port=upstream.port),
                "empty": EnvoyConfig(upstream_port=upstream.port, http_filters=[wasm_filter({}, wasm=BASELINE, vm_id="baseline")]),
                "filter": EnvoyConfig(upstream_port=upstream.port, http_filters=[wasm_filter(plugin)]),
                "empty-native": EnvoyConfig(upstream_port=upstream.port, http_filters=[baseline_filter()]),
                "native": EnvoyConfig(upstream_port=upstream.port, http_filters=[native_filter(plugin)]),
                "chain": EnvoyConfig(upstream_port=upstream.port, http_filters=cpp_chain(jwt_issuer)),
            }

            def start(name: str, workers: int):
                return start_envoy(
                    configs[name], tmp_path / f"{name}-{workers}", concurrency=workers, log_level="warning", timeout=180, env=NATIVE_ENV
                )

            with ExitStack() as stack:
                gateways = {name: stack.enter_context(start(name, 1)) for name in GATEWAYS}
                chain = gateways["chain"]
                verify_chain(chain, tmp_path, jwt)
                for name, envoy in gateways.items():
                    pin(envoy.pid, "0")
                    wrk(envoy.mcp_url, scripts[name], 4)  # warm up: token cache, connections, JIT
                results: dict[str, dict[str, list[float]]] = {name: {} for name in GATEWAYS}
                for _ in range(ROUNDS):
                    for name, envoy in gateways.items():
                        _, p50, p99 = wrk(envoy.mcp_url, scripts[name], 1)
                        cpu_before, served_before = cpu_seconds(envoy.pid), requests_served(envoy)
                        rps, _, _ = wrk(envoy.mcp_url, scripts[name], 16)
                        served = requests_served(envoy) - served_before
                        r = results[name]
                        r.setdefault("cpu_us", []).append((cpu_seconds(envoy.pid) - cpu_before) / max(served, 1) * 1e6)
                        r.setdefault("p50", []).append(p50)
                        r.setdefault("p99", []).append(p99)
                        r.setdefault("rps", []).append(rps)
                inside = {name: filter_p50s(gateways[name]) for name in INTENTGATE}
            memory: dict[int, dict[str, float]] = {}
            for workers in (1, 4):
                memory[workers] = {}
                for name in GATEWAYS:
                    with start(name, workers) as envoy:
                        wrk(envoy.mcp_url, scripts[name], 2 * workers, "3s")
                        time.sleep(1)
                        memory[workers][name] = rss_mib(envoy.pid)
    return report({name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}, memory, inside)


def report(med: dict[str, dict[str, float]], memory: dict[int, dict[str, float]], inside: dict[str, dict[str, float]]) -> str:
    plain = med["plain"]
    ratio = {name: med[name]["rps"] / plain["rps"] for name in GATEWAYS}
    added50 = {name: med[name]["p50"] - plain["p50"] for name in GATEWAYS}
    added99 = {name: med[name]["p99"] - plain["p99"] for name in GATEWAYS}
    extra1 = {name: memory[1][name] - memory[1]["plain"] for name in GATEWAYS}
    extra4 = {name: memory[4][name] - memory[4]["plain"] for name in GATEWAYS}
    per_worker = {name: (extra4[name] - extra1[name]) / 3 for name in GATEWAYS}
    of_empty_native = med["native"]["rps"] / med["empty-native"]["rps"]
    cpu_ratio = {name: plain["cpu_us"] / med[name]["cpu_us"] for name in GATEWAYS}
    cpu_of_empty_native = med["empty-native"]["cpu_us"] / med["native"]["cpu_us"]
    verdict = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    row = lambda label, cells: f"| {label} | " + " | ".join(cells) + " |"  # noqa: E731

    def inside_line(name: str, label: str) -> str:
        own = inside[name]
        return (
            f"{label}: {own.get('filter_us', 0):.0f} µs in the callback that decides a request (`intentgate.filter_us`), of which"
            f" token verify (cached) {own.get('verify_us', 0):.0f} µs and the checks after it (`intentgate.eval_us`)"
            f" {own.get('eval_us', 0):.0f} µs."
        )

    return "\n".join([
        "## Gateway: plain Envoy, the empty wasm filter, IntentGate (wasm), the empty native module, IntentGate (native), Envoy's C++ chain",
        "",
        f"`tools/call` (echo), same fixed-answer upstream, one run, {ROUNDS} alternating rounds of {DURATION} each, medians.",
        "Each gateway: 1 worker pinned to CPU 0; wrk (1 thread) and the upstream on CPU 1. IntentGate (both builds, the same",
        "plugin configuration): a token carrying `max_calls` (counted) and the demo policy (envoy/demo-policy.rego) as bytecode.",
        "C++ chain: `jwt_authn` (EdDSA JWT), `envoy.filters.http.mcp`, RBAC allowing two tool names to the JWT's subject.",
        "",
        "| | plain Envoy | empty wasm filter | IntentGate (wasm) | empty native module | IntentGate (native) | C++ chain |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("throughput, 16 connections (req/s)", [f"{med[n]['rps']:,.0f}" + ("" if n == "plain" else f" ({ratio[n]:.2f}×)") for n in GATEWAYS]),
        row("Envoy CPU per request, 16 connections (µs)", [f"{med[n]['cpu_us']:.0f}" + ("" if n == "plain" else f" ({cpu_ratio[n]:.2f}×)") for n in GATEWAYS]),
        row("latency p50, 1 connection (µs)", [f"{med[n]['p50']:.0f}" + ("" if n == "plain" else f" ({added50[n]:+.0f})") for n in GATEWAYS]),
        row("latency p99, 1 connection (µs)", [f"{med[n]['p99']:.0f}" + ("" if n == "plain" else f" ({added99[n]:+.0f})") for n in GATEWAYS]),
        row("Envoy memory, 1 worker (MiB)", [f"{memory[1][n]:.0f}" + ("" if n == "plain" else f" ({extra1[n]:+.0f})") for n in GATEWAYS]),
        row("Envoy memory, 4 workers (MiB)", [f"{memory[4][n]:.0f}" + ("" if n == "plain" else f" ({extra4[n]:+.0f})") for n in GATEWAYS]),
        row("memory per further worker (MiB)", ["" if n == "plain" else f"{per_worker[n]:+.1f}" for n in GATEWAYS]),
        "",
        "Inside the filter (its own histograms, sampled exchanges, p50):",
        "",
        "- " + inside_line("filter", "wasm"),
        "- " + inside_line("native", "native"),
        "",
        f"Targets, wasm: IntentGate ≥ 0.75× plain throughput — {verdict(ratio['filter'] >= 0.75)} ({ratio['filter']:.2f}×; the C++ chain",
        f"{ratio['chain']:.2f}×); ≤ 100 µs added at p50 — {verdict(added50['filter'] <= 100)} ({added50['filter']:+.0f} µs);",
        f"≤ +60 MiB at 1 worker — {verdict(extra1['filter'] <= 60)} ({extra1['filter']:+.0f} MiB); ≤ +15 MiB per further worker",
        f"— {verdict(per_worker['filter'] <= 15)} ({per_worker['filter']:+.1f} MiB).",
        "",
        f"Targets, native: ≥ 0.90× plain throughput — {verdict(ratio['native'] >= 0.90)} ({ratio['native']:.2f}×); ≥ 0.95× the empty",
        f"native module — {verdict(of_empty_native >= 0.95)} ({of_empty_native:.2f}×); ≤ 20 µs added at p50 —",
        f"{verdict(added50['native'] <= 20)} ({added50['native']:+.0f} µs); ≤ +15 MiB at 1 worker — {verdict(extra1['native'] <= 15)}",
        f"({extra1['native']:+.0f} MiB) and at 4 workers — {verdict(extra4['native'] <= 15)} ({extra4['native']:+.0f} MiB).",
        "",
        f"By CPU per request (the ratio a CPU-bound worker's throughput follows): native {cpu_ratio['native']:.2f}× plain and",
        f"{cpu_of_empty_native:.2f}× the empty native module, {med['native']['cpu_us'] - med['empty-native']['cpu_us']:+.0f} µs a request",
        f"over it; wasm {cpu_ratio['filter']:.2f}× plain, {med['filter']['cpu_us'] - med['empty']['cpu_us']:+.0f} µs over the empty wasm filter.",
    ])
