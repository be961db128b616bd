"""The Envoy Gateway example (deploy/envoy-gateway): the native module registered in an EnvoyProxy's
dynamicModules allowlist and attached to the MCP HTTPRoute by an EnvoyExtensionPolicy.

What is validated, and how:
- every resource, as a file and as `kubectl kustomize` renders it, against the CRD schemas and types of
  @kubernetes-models/envoy-gateway 2.0.0 and @kubernetes-models/gateway-api (strict: unknown fields are errors).
  That release predates dynamic modules, so the two dynamic-module fields (EnvoyProxy spec.dynamicModules,
  EnvoyExtensionPolicy spec.dynamicModule) are taken out first and checked instead against
  tests/deploy/dynamic-modules.schema.json, written here from Envoy Gateway's documented API;
- what a schema cannot say: module names unique in the allowlist, the policy's module registered in the
  EnvoyProxy its route's Gateway gets through the GatewayClass, the module and the token mounted where the
  configuration reads them, the proxies labelled for the control plane's NetworkPolicy;
- the policy's `config`: the native sidecar's plugin configuration, checked by the module itself under
  `envoy --mode validate` and served by the real Envoy, as Envoy Gateway's translator builds the filter (the JSON
  as a StringValue; the filter disabled on the listener and enabled on the policy's routes).
Not validated: Envoy Gateway's CEL rules beyond the dynamic-module source's, and Envoy Gateway itself (its
controller does not run here).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from e2e.envoy import EnvoyConfig, PreparedBootstrap, start_envoy, validate_config
from e2e.gateway import NATIVE

from .support import (
    ENVOY_GATEWAY_DIR,
    IN_CONTAINER_FILTER_TOKEN,
    IN_CONTAINER_NATIVE_FILTER,
    NATIVE_FILTER_TYPE,
    SIDECAR_NATIVE_YAML,
    connection_manager,
    find,
    is_gateway,
    is_resource,
    listeners,
    localize,
    plugin_configuration,
    readme_section,
    rel,
    routes,
    validate_crds,
    yaml_documents,
)

SCHEMA = json.loads((Path(__file__).resolve().parent / "dynamic-modules.schema.json").read_text())
DYNAMIC_MODULE_FIELDS = ("dynamicModules", "dynamicModule")
FILES = sorted(p for p in ENVOY_GATEWAY_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def resources_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml_documents(path) if is_resource(d) and is_gateway(d)]


def example() -> list[dict[str, Any]]:
    return [r for p in FILES for r in resources_in(p)]


def split(resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resource without its dynamic-module fields, and those fields."""
    rest = copy.deepcopy(resource)
    fields = {name: rest["spec"].pop(name) for name in DYNAMIC_MODULE_FIELDS if name in rest.get("spec", {})}
    return rest, fields


def dynamic_module_errors(fields: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(fields)]


def validate(entries: list[tuple[str, dict[str, Any]]], workdir: Path) -> dict[str, list[str]]:
    """CRD schema and type errors of each resource without its dynamic-module fields, plus those fields' errors
    against our schema."""
    stripped = [(source, split(resource)[0]) for source, resource in entries]
    errors = validate_crds(stripped, workdir)
    for source, resource in entries:
        errors[source] += dynamic_module_errors(split(resource)[1])
    return errors


def the(kind: str, resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    (found,) = [r for r in (resources if resources is not None else example()) if r["kind"] == kind]
    return found


def test_every_envoy_gateway_resource_validates(rendered: dict[str, Any], tmp_path: Path) -> None:
    entries = [(f"{rel(p)}#{i}", r) for p in FILES for i, r in enumerate(resources_in(p))]
    entries += [(f"kubectl kustomize deploy/envoy-gateway#{i}", r) for i, r in enumerate(rendered["envoy-gateway"])]
    kinds = {r["kind"] for _, r in entries}
    assert kinds == {
        "EnvoyProxy", "GatewayClass", "Gateway", "HTTPRoute", "EnvoyExtensionPolicy", "ClientTrafficPolicy",
        "BackendTrafficPolicy",
    }
    assert len(rendered["envoy-gateway"]) == len(FILES) == 7
    errors = validate(entries, tmp_path)
    assert set(errors) == {source for source, _ in entries}
    assert not {source: e for source, e in errors.items() if e}, errors


def test_validation_refuses_misspelt_fields_and_invalid_dynamic_modules(tmp_path: Path) -> None:
    proxy, policy, traffic = the("EnvoyProxy"), the("EnvoyExtensionPolicy"), the("ClientTrafficPolicy")
    misspelt = copy.deepcopy(traffic)
    misspelt["spec"]["timeout"]["http"]["streamIdleTimout"] = misspelt["spec"]["timeout"]["http"].pop("streamIdleTimeout")
    mounted = copy.deepcopy(proxy)
    mounted["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["volumeMount"] = []
    cases: dict[str, dict[str, Any]] = {"misspelt": misspelt, "mounted": mounted}

    def variant(resource: dict[str, Any], field: str, change: Any) -> dict[str, Any]:
        changed = copy.deepcopy(resource)
        change(changed["spec"][field][0])
        return changed

    cases["upper-case name"] = variant(policy, "dynamicModule", lambda m: m.update(name="IntentGate"))
    cases["config not an object"] = variant(policy, "dynamicModule", lambda m: m.update(config="{}"))
    cases["unknown field"] = variant(policy, "dynamicModule", lambda m: m.update(filtername="intentgate"))
    cases["relative path"] = variant(proxy, "dynamicModules", lambda m: m["source"]["local"].update(path="lib.so"))
    cases["remote without sha256"] = variant(
        proxy, "dynamicModules", lambda m: m.update(source={"type": "Remote", "remote": {"url": "https://x/m.so"}})
    )
    cases["remote beside local"] = variant(
        proxy,
        "dynamicModules",
        lambda m: m["source"].update(type="Remote", remote={"url": "https://x/m.so", "sha256": "a" * 64}),
    )
    cases["local without a path"] = variant(proxy, "dynamicModules", lambda m: m.update(source={"type": "Local"}))
    errors = validate(list(cases.items()), tmp_path)
    for case in cases:
        assert errors[case], f"{case}: accepted"
    assert any("streamIdleTimout" in e for e in errors["misspelt"])
    assert any("volumeMount" in e for e in errors["mounted"])


def test_the_policy_loads_a_module_its_gateways_envoyproxy_registers() -> None:
    proxy, policy = the("EnvoyProxy"), the("EnvoyExtensionPolicy")
    names = [m["name"] for m in proxy["spec"]["dynamicModules"]]
    assert len(names) == len(set(names)), "the allowlist is a map keyed by name"
    # Policy -> HTTPRoute -> Gateway -> GatewayClass -> EnvoyProxy.
    (target,) = policy["spec"]["targetRefs"]
    route = the("HTTPRoute")
    assert (target["kind"], target["name"]) == ("HTTPRoute", route["metadata"]["name"])
    assert route["metadata"]["namespace"] == policy["metadata"]["namespace"]
    (parent,) = route["spec"]["parentRefs"]
    gateway = the("Gateway")
    assert parent["name"] == gateway["metadata"]["name"]
    gateway_class = the("GatewayClass")
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    reference = gateway_class["spec"]["parametersRef"]
    assert (reference["kind"], reference["name"], reference["namespace"]) == (
        "EnvoyProxy", proxy["metadata"]["name"], proxy["metadata"]["namespace"]
    )
    for module in policy["spec"]["dynamicModule"]:
        assert module["name"] in names, f"{module['name']} is not in the EnvoyProxy's allowlist"
    (entry,) = proxy["spec"]["dynamicModules"]
    # The module keeps process-wide state: it must not be unloaded when a listener's configuration changes.
    assert entry["doNotClose"] is True


def test_the_module_and_its_token_are_mounted_where_the_configuration_reads_them() -> None:
    proxy = the("EnvoyProxy")
    deployment = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    volumes = {v["name"]: v for v in deployment["pod"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in deployment["container"]["volumeMounts"]}
    (entry,) = proxy["spec"]["dynamicModules"]
    module_path = Path(entry["source"]["local"]["path"])
    assert str(module_path) == IN_CONTAINER_NATIVE_FILTER
    image = volumes[mounts[str(module_path.parent)]]["image"]
    assert image["reference"] == "ghcr.io/intentgate/intentgate-filter-native:0.1.0"
    config = the("EnvoyExtensionPolicy")["spec"]["dynamicModule"][0]["config"]
    token_file = Path(config["control_plane"]["token_file"])
    assert str(token_file) == IN_CONTAINER_FILTER_TOKEN
    secret = volumes[mounts[str(token_file.parent)]]["secret"]
    assert [item["path"] for item in secret["items"]] == [token_file.name]
    # Readable by Envoy's group alone; and the proxies may reach the control plane's gRPC port.
    assert secret["defaultMode"] == 0o440 and deployment["pod"]["securityContext"]["fsGroup"] == 65532
    assert deployment["pod"]["labels"]["intentgate.io/filter"] == "true"
    # README creates the Secret where Envoy Gateway runs the proxies.
    section = readme_section("Attach to Envoy Gateway")
    assert f"-n {proxy['metadata']['namespace']} create secret generic {secret['secretName']}" in section


def test_the_policy_config_is_the_native_sidecars_plugin_configuration() -> None:
    (module,) = the("EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    sidecar = plugin_configuration(listeners(yaml_documents(SIDECAR_NATIVE_YAML)[0])["gateway"])
    assert module["config"] == sidecar
    assert module["filterName"] == "intentgate"


# --- the policy's config in the real Envoy, as Envoy Gateway builds the filter -----------------------------------


def as_envoy_gateway_builds(config: dict[str, Any]) -> dict[str, Any]:
    """The HTTP filter Envoy Gateway's translator makes of the policy's module (the JSON as a StringValue, the
    registered module's source and doNotClose); disabled on the listener, enabled on the policy's routes."""
    (entry,) = the("EnvoyProxy")["spec"]["dynamicModules"]
    (module,) = the("EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    return {
        "name": "envoy.filters.http.dynamic_modules/envoyextensionpolicy/mcp-tools/intentgate/dynamic-module/0",
        "disabled": True,
        "typed_config": {
            "@type": NATIVE_FILTER_TYPE,
            "dynamic_module_config": {
                "module": {"local": {"filename": entry["source"]["local"]["path"]}},
                "do_not_close": entry["doNotClose"],
            },
            "filter_name": module["filterName"],
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": json.dumps(config, separators=(",", ":")),
            },
        },
    }


def envoy_gateway_bootstrap(config: dict[str, Any], upstream_port: int) -> dict[str, Any]:
    """A gateway whose MCP routes enable the filter as Envoy Gateway enables it on a policy's routes, its paths
    localized (the built module, a token file)."""
    envoy = EnvoyConfig(upstream_port=upstream_port)
    envoy.http_filters.append(as_envoy_gateway_builds(config))
    document = localize(envoy.bootstrap())
    gateway = listeners(document)["gateway"]
    (entry,) = [f for f in connection_manager(gateway)["http_filters"] if f.get("disabled")]
    assert entry["typed_config"]["dynamic_module_config"]["module"]["local"]["filename"] == str(NATIVE)
    for route in routes(gateway):
        route["typed_per_filter_config"] = {
            entry["name"]: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}
        }
    return document


def policy_config() -> dict[str, Any]:
    (module,) = the("EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    return copy.deepcopy(module["config"])


def test_the_policy_config_passes_the_modules_own_check_in_envoy_validate(tmp_path: Path) -> None:
    done = validate_config(PreparedBootstrap(envoy_gateway_bootstrap(policy_config(), 9)), tmp_path / "ok")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # The check is the module's: a setting it does not know refuses the configuration.
    broken = policy_config()
    broken["control_plane"]["token_fil"] = broken["control_plane"].pop("token_file")
    done = validate_config(PreparedBootstrap(envoy_gateway_bootstrap(broken, 9)), tmp_path / "broken")
    assert done.returncode != 0 and "token_fil" in done.stdout + done.stderr


def test_the_policy_config_serves_in_the_real_envoy_on_the_policys_routes(tmp_path: Path) -> None:
    """Loaded from the policy's JSON and enabled per route as Envoy Gateway does: the module answers the MCP
    route (no token: its 401), so it is on the route; until the control plane's first snapshot nothing passes."""
    config = policy_config()
    config["control_plane"]["address"] = "http://127.0.0.1:9"  # nothing listens: the module keeps failing closed
    document = envoy_gateway_bootstrap(config, 9)
    with start_envoy(PreparedBootstrap(document), tmp_path) as envoy:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        answer = httpx.post(envoy.mcp_url, json=body, timeout=10, trust_env=False)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == -32010
        assert "[dynamic_modules]" in envoy.log_text() and "intentgate: configured" in envoy.log_text()


def test_rendered_example_carries_the_resources_of_the_files(rendered: dict[str, Any]) -> None:
    for resource in example():
        rendered_one = find(rendered["envoy-gateway"], resource["kind"], resource["metadata"]["name"])
        assert rendered_one["spec"] == resource["spec"]
