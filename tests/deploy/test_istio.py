"""The Istio attachment: every resource validates against Istio's CRD schemas, the filter configuration it
carries is one the filter accepts in the real Envoy, it syncs over the cluster Istio builds for the control
plane's gRPC port, and the EnvoyFilter form is needed because the WasmPlugin form cannot set
allow_on_headers_stop_iteration (proved here against the real Envoy and filter)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.envoy import EnvoyConfig, PreparedBootstrap, start_envoy, static_cluster, validate_config
from e2e.gateway import DEMO_POLICY, WASM, Issuer, tenant_config
from e2e.peers import EverythingServer, start_everything
from e2e.rpc import RawMcp, tool_call

from .support import ISTIO_DIR, WASM_FILTER_TYPE, find, is_istio, is_resource, manifest_files, rel, validate_crds, yaml_documents

WASMPLUGIN = ISTIO_DIR / "wasmplugin.yaml"
ENVOYFILTER = ISTIO_DIR / "envoyfilter.yaml"
HOLD = ISTIO_DIR / "envoyfilter-approval-hold.yaml"
DESTINATION_RULE = ISTIO_DIR / "destinationrule.yaml"
AUTHORIZATION = ISTIO_DIR / "authorizationpolicy.yaml"


def istio_resources(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml_documents(path) if is_resource(d) and is_istio(d)]


def the(path: Path) -> dict[str, Any]:
    (resource,) = istio_resources(path)
    return resource


def extension_config(envoy_filter: dict[str, Any]) -> dict[str, Any]:
    (patch,) = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    return patch["patch"]["value"]


def as_istio_agent_delivers(typed_config: dict[str, Any]) -> dict[str, Any]:
    """istio-agent pulls the OCI image and hands Envoy the module as a local file, the rest unchanged."""
    delivered = copy.deepcopy(typed_config)
    code = delivered["config"]["vm_config"]["code"]
    assert code["remote"]["http_uri"]["uri"].startswith("oci://")
    delivered["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    return delivered


def as_istiod_builds(plugin: dict[str, Any], plugin_config: dict[str, Any]) -> dict[str, Any]:
    """The Wasm filter istiod makes of a WasmPlugin (pilot/pkg/model/extensions.go): name, root_id, the plugin
    configuration as a JSON StringValue, a V8 VM; nothing else (no allow_on_headers_stop_iteration)."""
    spec = plugin["spec"]
    return {
        "@type": WASM_FILTER_TYPE,
        "config": {
            "name": f"{plugin['metadata']['namespace']}.{plugin['metadata']['name']}",
            "root_id": spec["pluginName"],
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(plugin_config)},
            "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(WASM)}}},
        },
    }


def plugin_config_of_envoyfilter() -> dict[str, Any]:
    return json.loads(extension_config(the(ENVOYFILTER))["typed_config"]["config"]["configuration"]["value"])


ISTIO_FILES = [p for p in manifest_files() if istio_resources(p)]


def test_every_istio_manifest_file_is_found() -> None:
    found = {rel(p) for p in ISTIO_FILES}
    for path in (WASMPLUGIN, ENVOYFILTER, HOLD, DESTINATION_RULE, AUTHORIZATION, ISTIO_DIR / "serviceentry-external.yaml"):
        assert rel(path) in found


def test_istio_manifests_validate_against_istio_crd_schemas(rendered: dict[str, Any], tmp_path: Path) -> None:
    entries = [(f"{rel(p)}#{i}", r) for p in ISTIO_FILES for i, r in enumerate(istio_resources(p))]
    entries += [(f"kubectl kustomize deploy/istio#{i}", r) for i, r in enumerate(rendered["istio"])]
    assert len(rendered["istio"]) == 4
    errors = validate_crds(entries, tmp_path)
    assert set(errors) == {source for source, _ in entries}
    assert not {source: e for source, e in errors.items() if e}, errors


def test_istio_crd_validation_refuses_misspelt_fields_and_invalid_values(tmp_path: Path) -> None:
    plugin = the(WASMPLUGIN)
    misspelt = copy.deepcopy(plugin)
    misspelt["spec"]["selectr"] = misspelt["spec"].pop("selector")
    invalid = copy.deepcopy(plugin)
    invalid["spec"]["failStrategy"] = "FAIL_SOMETIMES"
    nested = copy.deepcopy(the(DESTINATION_RULE))
    nested["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["keepalive"] = {"time": "30s"}
    errors = validate_crds([("misspelt", misspelt), ("invalid", invalid), ("nested", nested)], tmp_path)
    assert any("selectr" in e for e in errors["misspelt"])
    assert any("failStrategy" in e or "FAIL_SOMETIMES" in e for e in errors["invalid"])
    assert any("keepalive" in e for e in errors["nested"])


def test_wasmplugin_and_envoyfilter_carry_the_same_filter_configuration() -> None:
    plugin, envoy_filter = the(WASMPLUGIN), the(ENVOYFILTER)
    # The one difference: a WasmPlugin cannot hold headers (see wasmplugin.yaml).
    assert {**plugin["spec"]["pluginConfig"], "hold_headers": True} == {"hold_headers": True, **plugin_config_of_envoyfilter()}
    assert plugin["spec"]["pluginConfig"]["hold_headers"] is False
    assert plugin["spec"]["selector"]["matchLabels"] == envoy_filter["spec"]["workloadSelector"]["labels"]
    config = extension_config(envoy_filter)["typed_config"]["config"]
    assert plugin["spec"]["url"] == config["vm_config"]["code"]["remote"]["http_uri"]["uri"]
    assert plugin["spec"]["pluginName"] == config["root_id"]
    assert plugin["spec"]["failStrategy"] == "FAIL_CLOSE"
    # The filter only on the tool server's inbound port, in both forms and in the idle-timeout patch.
    (match,) = plugin["spec"]["match"]
    ports = [p["number"] for p in match["ports"]]
    for patch in [*envoy_filter["spec"]["configPatches"][1:], *the(HOLD)["spec"]["configPatches"]]:
        assert patch["match"]["context"] == "SIDECAR_INBOUND" and [patch["match"]["listener"]["portNumber"]] == ports


def test_envoyfilter_fails_closed_while_the_filter_is_not_delivered() -> None:
    (insert,) = [p for p in the(ENVOYFILTER)["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    discovery = insert["patch"]["value"]["config_discovery"]
    assert insert["patch"]["value"]["name"] == extension_config(the(ENVOYFILTER))["name"]
    assert discovery["config_source"]["initial_fetch_timeout"] == "0s"
    assert "default_config" not in discovery
    assert extension_config(the(ENVOYFILTER))["typed_config"]["config"]["allow_on_headers_stop_iteration"] is True


def test_filter_syncs_over_the_cluster_istio_builds_for_the_control_plane_grpc_port(rendered: dict[str, Any]) -> None:
    service = find(rendered["production"], "Service", "intentgate-control-plane")
    (grpc,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert plugin_config_of_envoyfilter()["control_plane"]["cluster"] == f"outbound|{grpc['port']}||{host}"
    # gRPC needs HTTP/2: Istio picks it from the port's protocol.
    assert grpc["appProtocol"] == "grpc"
    rule = the(DESTINATION_RULE)
    assert rule["spec"]["host"] == host
    pool = rule["spec"]["trafficPolicy"]["connectionPool"]
    assert "maxConnectionDuration" not in pool["tcp"] and pool["tcp"]["tcpKeepalive"]
    assert pool["http"]["maxRequestsPerConnection"] == 0


def test_approval_hold_patch_outlasts_the_default_approval_timeout() -> None:
    (patch,) = the(HOLD)["spec"]["configPatches"]
    timeout = patch["patch"]["value"]["typed_config"]["stream_idle_timeout"]
    assert timeout.endswith("s") and float(timeout[:-1]) >= 600


def istio_bootstrap(typed_config: dict[str, Any], cluster: str) -> EnvoyConfig:
    config = EnvoyConfig(upstream_port=9)
    config.http_filters.append({"name": "intentgate", "typed_config": typed_config})
    config.extra_clusters.append(static_cluster(cluster, "127.0.0.1", 9, http2=True))
    return config


def test_envoyfilter_extension_config_passes_envoy_validate_as_istio_agent_delivers_it(tmp_path: Path) -> None:
    typed_config = as_istio_agent_delivers(extension_config(the(ENVOYFILTER))["typed_config"])
    cluster = plugin_config_of_envoyfilter()["control_plane"]["cluster"]
    done = validate_config(istio_bootstrap(typed_config, cluster), tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def test_wasmplugin_configuration_passes_the_filters_own_check(tmp_path: Path) -> None:
    plugin = the(WASMPLUGIN)
    typed_config = as_istiod_builds(plugin, plugin["spec"]["pluginConfig"])
    done = validate_config(istio_bootstrap(typed_config, plugin["spec"]["pluginConfig"]["control_plane"]["cluster"]), tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


# --- why envoyfilter.yaml, not wasmplugin.yaml, is applied ----------------------------------------


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EverythingServer]:
    with start_everything(log_path=tmp_path_factory.mktemp("everything") / "everything.log") as server:
        yield server


def tool_call_answers(typed_config: dict[str, Any], everything: EverythingServer, workdir: Path, token: str) -> bool:
    config = EnvoyConfig(upstream_port=everything.port)
    config.http_filters.append({"name": "intentgate", "typed_config": typed_config})
    with start_envoy(PreparedBootstrap(config.bootstrap()), workdir) as envoy, RawMcp(envoy.mcp_url, token=token, timeout=4) as raw:
        try:
            session = raw.initialize()
            answer = raw.post(tool_call("echo", {"message": "through the mesh"}), session_id=session)
        except httpx.ReadTimeout:
            return False
        assert answer.message()["result"]["content"][0]["text"] == "Echo: through the mesh", answer.describe()
        denied = raw.post(tool_call("get-env", {}), session_id=session).message()
        assert denied["error"]["code"] == -32012 and denied["error"]["data"]["rule"] == "no_env", denied
        return True


def test_both_istio_forms_serve_tools_calls_and_refuse_the_denied_ones(
    everything: EverythingServer, tmp_path: Path
) -> None:
    """The WasmPlugin form (no allow_on_headers_stop_iteration, so the filter runs with hold_headers false) and
    the EnvoyFilter form (headers held) both answer an allowed call and refuse a denied one, on the real Envoy."""
    issuer = Issuer.generate()
    token = issuer.token("mesh-agent", "demo", tools=["echo", "get-env"])
    # A static key and policy stand in for the control plane's snapshot.
    gateway = {"keys": [{"public_key": issuer.public_key}], "tenants": {"demo": tenant_config(DEMO_POLICY.read_text())}}
    as_wasmplugin = as_istiod_builds(the(WASMPLUGIN), {"hold_headers": False, "gateway": gateway})
    as_envoyfilter = as_istio_agent_delivers(extension_config(the(ENVOYFILTER))["typed_config"])
    as_envoyfilter["config"]["configuration"]["value"] = json.dumps({"gateway": gateway})
    for name, form in (("wasmplugin", as_wasmplugin), ("envoyfilter", as_envoyfilter)):
        assert tool_call_answers(form, everything, tmp_path / name, token), f"{name}: an allowed call is answered"


def test_mesh_admits_to_the_grpc_port_only_the_namespaces_running_the_filter(rendered: dict[str, Any]) -> None:
    service = find(rendered["production"], "Service", "intentgate-control-plane")
    ports = {p["name"]: str(p["port"]) for p in service["spec"]["ports"]}
    policy = the(AUTHORIZATION)
    assert policy["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert policy["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert policy["spec"]["action"] == "ALLOW"
    grpc_rules = [r for r in policy["spec"]["rules"] if ports["grpc"] in r["to"][0]["operation"]["ports"]]
    (rule,) = grpc_rules
    (source,) = rule["from"]
    attached = {the(WASMPLUGIN)["metadata"]["namespace"], the(ENVOYFILTER)["metadata"]["namespace"]}
    assert set(source["source"]["namespaces"]) == attached
    (rest,) = [r for r in policy["spec"]["rules"] if r["to"][0]["operation"]["ports"] == [ports["http"]]]
    assert "from" not in rest, "the REST port authenticates each call itself"
