"""Every Envoy configuration in the repository loads in the real Envoy with the real filter, and the shipped
sidecar and front-proxy configurations encode the timeouts, retries and control-plane connection the gateway
needs (the approval hold, the long-lived sync stream, at-most-once tool calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.envoy import PreparedBootstrap, validate_config
from e2e.gateway import NATIVE, WASM

from .support import (
    ENVOY_DIR,
    FRONT_PROXY_YAML,
    SIDECAR_NATIVE_YAML,
    SIDECAR_YAML,
    clusters,
    connection_manager,
    duration_seconds,
    envoy_configuration_files,
    listeners,
    load_bootstrap,
    native_filter,
    plugin_configuration,
    rel,
    routes,
    wasm_filter,
)

CONFIGURATIONS = envoy_configuration_files()
SHIPPED = [SIDECAR_YAML, FRONT_PROXY_YAML]
"""The wasm configurations operators deploy (envoy/standalone.yaml is `make run`'s local gateway)."""
SHIPPED_ANY_BUILD = [*SHIPPED, SIDECAR_NATIVE_YAML]
"""...and the native sidecar, for what does not depend on how the filter reaches the control plane."""

DEFAULT_APPROVAL_TIMEOUT_S = 300
"""intentgate-core's default approval_timeout_secs: how long the filter may hold a tools/call."""
SAFE_RETRY_ON = {"connect-failure", "refused-stream", "reset-before-request"}
"""Retry conditions under which the request provably never reached the upstream."""
MCP_PATHS = ("/v1/mcp", "/v1/tool-call")


def envoy_validate(document: dict[str, Any], workdir: Path) -> str:
    """Runs ``envoy --mode validate`` (which loads the filter and runs its on_configure); returns its output."""
    assert WASM.exists(), f"{WASM} is missing: run `make wasm`"
    assert NATIVE.exists(), f"{NATIVE} is missing: run `make native`"
    done = validate_config(PreparedBootstrap(document), workdir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"envoy --mode validate refused the configuration:\n{output[-4000:]}"
    return output


def test_every_envoy_configuration_of_the_repository_is_found() -> None:
    found = {rel(p) for p in CONFIGURATIONS}
    expected = {
        "envoy/standalone.yaml",
        "envoy/standalone-native.yaml",
        "envoy/sidecar.yaml",
        "envoy/sidecar-native.yaml",
        "envoy/front-proxy.yaml",
        "deploy/kubernetes/tool-server/envoy.yaml",
        "deploy/kubernetes/tool-server-native/envoy.yaml",
    }
    assert expected <= found, f"missing: {expected - found}"


@pytest.mark.parametrize("path", CONFIGURATIONS, ids=rel)
def test_envoy_configuration_passes_envoy_validate(path: Path, tls_dir: Path, tmp_path: Path) -> None:
    output = envoy_validate(load_bootstrap(path, tls_dir), tmp_path)
    assert "OK" in output


def test_envoy_validate_refuses_a_plugin_configuration_the_filter_rejects(tmp_path: Path) -> None:
    """The validation above runs the filter's own configuration check, not only Envoy's schema."""
    document = load_bootstrap(SIDECAR_YAML)
    config = wasm_filter(listeners(document)["gateway"])["typed_config"]["config"]
    plugin = json.loads(config["configuration"]["value"])
    plugin["control_plane"]["clustr"] = plugin["control_plane"].pop("cluster")
    config["configuration"]["value"] = json.dumps(plugin)
    done = validate_config(PreparedBootstrap(document), tmp_path)
    assert done.returncode != 0
    assert "clustr" in done.stdout + done.stderr


def test_envoy_validate_refuses_a_native_configuration_the_module_rejects(tmp_path: Path) -> None:
    """The native module checks its configuration in validation mode too: without control_plane.address (its
    way to the control plane) the native standalone configuration is refused, and Envoy says why."""
    document = load_bootstrap(ENVOY_DIR / "standalone-native.yaml")
    (entry,) = [f for f in connection_manager(listeners(document)["gateway"])["http_filters"] if f["name"] == "intentgate"]
    value = entry["typed_config"]["filter_config"]
    plugin = json.loads(value["value"])
    del plugin["control_plane"]["address"]
    value["value"] = json.dumps(plugin)
    done = validate_config(PreparedBootstrap(document), tmp_path)
    assert done.returncode != 0
    assert "control_plane.address" in done.stdout + done.stderr


def test_envoy_validate_refuses_a_route_to_a_missing_cluster(tmp_path: Path) -> None:
    document = load_bootstrap(SIDECAR_YAML)
    mcp = next(r for r in routes(listeners(document)["gateway"]) if r["match"].get("path") == "/v1/mcp")
    mcp["route"]["cluster"] = "no_such_cluster"
    assert validate_config(PreparedBootstrap(document), tmp_path).returncode != 0


@pytest.mark.parametrize("path", SHIPPED_ANY_BUILD, ids=rel)
def test_mcp_routes_outlast_the_approval_hold(path: Path, tls_dir: Path) -> None:
    gateway = listeners(load_bootstrap(path, tls_dir))["gateway"]
    hcm = connection_manager(gateway)
    # request_timeout runs until the filters pass the request on, so it would time the hold itself.
    assert duration_seconds(hcm.get("request_timeout", "0s")) == 0
    assert "max_stream_duration" not in hcm.get("common_http_protocol_options", {})
    for route in routes(gateway):
        if route["match"].get("path") in MCP_PATHS:
            action = route["route"]
            assert duration_seconds(action["timeout"]) == 0, "event streams and GET streams have no fixed end"
            idle = duration_seconds(action.get("idle_timeout", hcm["stream_idle_timeout"]))
            assert idle >= 2 * DEFAULT_APPROVAL_TIMEOUT_S, f"{route['match']}: idle timeout {idle}s"


@pytest.mark.parametrize("path", SHIPPED_ANY_BUILD, ids=rel)
def test_routes_retry_only_requests_that_never_reached_their_upstream(path: Path, tls_dir: Path) -> None:
    for route in routes(listeners(load_bootstrap(path, tls_dir))["gateway"]):
        policy = route.get("route", {}).get("retry_policy")
        if policy is not None:
            assert set(policy["retry_on"].split(",")) <= SAFE_RETRY_ON, route["match"]


@pytest.mark.parametrize("path", SHIPPED, ids=rel)
def test_filter_syncs_over_an_http2_cluster_that_never_ends_the_stream(path: Path, tls_dir: Path) -> None:
    document = load_bootstrap(path, tls_dir)
    gateway = listeners(document)["gateway"]
    config = wasm_filter(gateway)["typed_config"]["config"]
    assert config["allow_on_headers_stop_iteration"] is True
    name = plugin_configuration(gateway)["control_plane"]["cluster"]
    cluster = clusters(document)[name]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    http2 = options["explicit_http_config"]["http2_protocol_options"]
    # Dead peers are found by PINGs; nothing ends a healthy stream.
    keepalive = http2["connection_keepalive"]
    assert duration_seconds(keepalive["interval"]) > 0 and duration_seconds(keepalive["timeout"]) > 0
    common = options.get("common_http_protocol_options", {})
    assert "max_stream_duration" not in common and "idle_timeout" not in common
    assert "max_connection_duration" not in common


@pytest.mark.parametrize("path", SHIPPED_ANY_BUILD, ids=rel)
def test_admin_routes_reach_the_control_plane_without_the_filter(path: Path, tls_dir: Path) -> None:
    gateway = listeners(load_bootstrap(path, tls_dir))["gateway"]
    filter_name = "intentgate"
    assert any(f["name"] == filter_name for f in connection_manager(gateway)["http_filters"])
    for prefix in ("/v1/admin/", "/api/", "/healthz", "/oauth/", "/.well-known/oauth-authorization-server"):
        (route,) = [r for r in routes(gateway) if prefix in (r["match"].get("prefix"), r["match"].get("path"))]
        assert route["route"]["cluster"] == "intentgate_control_plane_http"
        assert route["typed_per_filter_config"][filter_name]["disabled"] is True


@pytest.mark.parametrize("path", SHIPPED_ANY_BUILD, ids=rel)
def test_policy_input_remote_ip_is_the_peer_not_a_client_header(path: Path, tls_dir: Path) -> None:
    hcm = connection_manager(listeners(load_bootstrap(path, tls_dir))["gateway"])
    assert hcm["use_remote_address"] is True
    assert hcm["xff_num_trusted_hops"] == 0


@pytest.mark.parametrize("path", SHIPPED, ids=rel)
def test_grpc_calls_carry_the_filter_token_from_a_file_not_from_the_configuration(path: Path, tls_dir: Path) -> None:
    document = load_bootstrap(path, tls_dir)
    gateway = listeners(document)["gateway"]
    assert "token" not in plugin_configuration(gateway)["control_plane"]
    name = plugin_configuration(gateway)["control_plane"]["cluster"]
    options = clusters(document)[name]["typed_extension_protocol_options"]
    (injector, codec) = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
    generic = injector["typed_config"]["credential"]["typed_config"]
    assert generic["header"].lower() == "authorization" and generic["header_value_prefix"] == "Bearer "
    (secret,) = [s for s in document["static_resources"]["secrets"] if s["name"] == generic["credential"]["name"]]
    assert "filename" in secret["generic_secret"]["secret"]
    assert codec["name"] == "envoy.filters.http.upstream_codec"


def test_native_sidecar_dials_the_control_plane_itself_with_the_token_from_a_file(tls_dir: Path) -> None:
    """No gRPC cluster and no Envoy-held secret: the module's own client carries the token it reads from the
    mounted Secret, which never appears in the configuration."""
    document = load_bootstrap(SIDECAR_NATIVE_YAML, tls_dir)
    control_plane = plugin_configuration(listeners(document)["gateway"])["control_plane"]
    assert control_plane["address"].startswith("http://") and "cluster" not in control_plane
    assert "token" not in control_plane and control_plane["token_file"]
    assert "secrets" not in document["static_resources"]
    assert set(clusters(document)) == {"tool_server", "intentgate_control_plane_http", "envoy_admin"}


def test_envoy_validate_refuses_a_native_token_given_twice(tmp_path: Path) -> None:
    """The module's own check runs under `envoy --mode validate`: an inline token beside token_file is refused."""
    document = load_bootstrap(SIDECAR_NATIVE_YAML)
    value = native_filter(listeners(document)["gateway"])["typed_config"]["filter_config"]
    plugin = json.loads(value["value"])
    plugin["control_plane"]["token"] = "inline-token"
    value["value"] = json.dumps(plugin)
    done = validate_config(PreparedBootstrap(document), tmp_path)
    assert done.returncode != 0
    assert "control_plane.token and control_plane.token_file are exclusive" in done.stdout + done.stderr
