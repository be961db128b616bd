"""The Kubernetes manifests: every file and every kustomization as rendered by ``kubectl kustomize`` validates
against the Kubernetes schemas (kubernetes-validate, strict: unknown fields are errors), and what they deploy
holds together: secrets referenced not shipped, hardened containers, the sidecar configuration the repository
tests, and Services that match what the Envoy configuration dials."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from .support import (
    CONTROL_PLANE_SOURCES,
    IN_CONTAINER_FILTER,
    IN_CONTAINER_FILTER_TOKEN,
    IN_CONTAINER_NATIVE_FILTER,
    KUBERNETES_SIDECAR_NATIVE_YAML,
    KUBERNETES_SIDECAR_YAML,
    KUBERNETES_VERSIONS,
    SIDECAR_NATIVE_YAML,
    SIDECAR_YAML,
    all_containers,
    clusters,
    endpoint_addresses,
    env_of,
    find,
    is_custom,
    is_resource,
    listeners,
    manifest_files,
    native_filter,
    plugin_configuration,
    pod_templates,
    readme_section,
    rel,
    wasm_filter,
    yaml_documents,
)

KUBERNETES_RENDERS = ("base", "tool-server", "tool-server-native", "trial", "production")
APPLIED = ("trial", "production")
"""The overlays an operator applies (base and tool-server are also rendered, as parts)."""
SECRET_ENV = (
    "INTENTGATE_MASTER_KEY",
    "INTENTGATE_ADMIN_TOKEN",
    "INTENTGATE_TENANT_ADMIN_TOKENS",
    "INTENTGATE_FILTER_TOKEN",
    "INTENTGATE_DISCOVERY_SYNC_TOKEN",
    "INTENTGATE_REPORTS_API_TOKEN",
)
INTEGRATION_CREDENTIALS = {
    "INTENTGATE_SPLUNK_HEC_TOKEN",
    "INTENTGATE_DATADOG_API_KEY",
    "INTENTGATE_SENTINEL_CLIENT_SECRET",
    "INTENTGATE_WEBHOOK_SECRET",
}
"""Credentials of the SIEM and webhook destinations: an operator adds them (from a Secret) with the destination."""


@dataclass(frozen=True)
class Sidecar:
    """A tool-server kustomization and the sidecar configuration it ships."""

    render: str
    envoy: Path
    copy: Path
    image: str
    module: str

    def __str__(self) -> str:
        return self.render

    def filename(self) -> str:
        """Where the configuration loads the filter from."""
        gateway = listeners(yaml_documents(self.envoy)[0])["gateway"]
        if self.module == IN_CONTAINER_NATIVE_FILTER:
            return native_filter(gateway)["typed_config"]["dynamic_module_config"]["module"]["local"]["filename"]
        return wasm_filter(gateway)["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]


SIDECARS = (
    Sidecar("tool-server", SIDECAR_YAML, KUBERNETES_SIDECAR_YAML, "ghcr.io/intentgate/intentgate-filter:0.1.0",
            IN_CONTAINER_FILTER),
    Sidecar("tool-server-native", SIDECAR_NATIVE_YAML, KUBERNETES_SIDECAR_NATIVE_YAML,
            "ghcr.io/intentgate/intentgate-filter-native:0.1.0", IN_CONTAINER_NATIVE_FILTER),
)


def schema_errors(resource: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(str(p) for p in e.path)}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return e.message
    return None


def kubernetes_resources_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml_documents(path) if is_resource(d) and not is_custom(d)]


MANIFEST_FILES = [p for p in manifest_files() if kubernetes_resources_in(p)]


def test_every_kubernetes_manifest_file_is_found() -> None:
    found = {rel(p) for p in MANIFEST_FILES}
    for expected in (
        "deploy/kubernetes/base/deployment.yaml",
        "deploy/kubernetes/base/service.yaml",
        "deploy/kubernetes/base/cronjob.yaml",
        "deploy/kubernetes/overlays/trial/pvc.yaml",
        "deploy/kubernetes/tool-server/deployment.yaml",
    ):
        assert expected in found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=rel)
def test_manifest_file_validates_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    for resource in kubernetes_resources_in(path):
        assert schema_errors(resource, version) is None, f"{rel(path)} {resource['kind']}: {schema_errors(resource, version)}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", KUBERNETES_RENDERS)
def test_rendered_kustomization_validates_against_the_kubernetes_schemas(
    name: str, version: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    resources = rendered[name]
    assert resources, f"{name} rendered nothing"
    errors = {
        f"{r['kind']}/{r['metadata']['name']}": schema_errors(r, version) for r in resources if not is_custom(r)
    }
    assert not {k: v for k, v in errors.items() if v}, errors


def test_schema_validation_refuses_unknown_fields_and_wrong_types(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = find(rendered["production"], "Deployment", "intentgate-control-plane")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"tcpSocket": {"port": 8081}}
    assert "readinesProbe" in (schema_errors(misspelt, KUBERNETES_VERSIONS[0]) or "")
    mistyped = copy.deepcopy(deployment)
    mistyped["spec"]["replicas"] = "three"
    assert schema_errors(mistyped, KUBERNETES_VERSIONS[0]) is not None


def control_plane(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = find(resources, "Deployment", "intentgate-control-plane")["spec"]["template"]["spec"]["containers"]
    return container


def test_trial_overlay_runs_one_replica_on_sqlite_on_a_persistent_volume(rendered: dict[str, Any]) -> None:
    resources = rendered["trial"]
    deployment = find(resources, "Deployment", "intentgate-control-plane")
    assert deployment["spec"]["replicas"] == 1
    # SQLite has one writer: the old pod stops before the new one opens the file.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    url = env_of(control_plane(resources))["INTENTGATE_DATABASE_URL"]["value"]
    assert url.startswith("sqlite:///var/lib/intentgate/") and "mode=rwc" in url
    pod = deployment["spec"]["template"]["spec"]
    (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
    claim = find(resources, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    (mount,) = [m for m in control_plane(resources)["volumeMounts"] if m["name"] == "data"]
    assert mount["mountPath"] == "/var/lib/intentgate"
    # The trial brings the example tool server with its sidecar.
    find(resources, "Deployment", "mcp-tool-server")


def test_production_overlay_runs_several_replicas_on_postgres_from_a_secret(rendered: dict[str, Any]) -> None:
    resources = rendered["production"]
    deployment = find(resources, "Deployment", "intentgate-control-plane")
    assert deployment["spec"]["replicas"] >= 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    url = env_of(control_plane(resources))["INTENTGATE_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "intentgate-control-plane", "key": "database-url"}
    assert not any(r["kind"] == "PersistentVolumeClaim" for r in resources)
    assert find(resources, "PodDisruptionBudget", "intentgate-control-plane")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", KUBERNETES_RENDERS)
def test_secrets_are_referenced_never_shipped(name: str, rendered: dict[str, Any]) -> None:
    resources = rendered[name]
    assert not [r for r in resources if r["kind"] == "Secret"]
    for where, template in pod_templates(resources):
        for container in all_containers(template["spec"]):
            env = env_of(container)
            for variable in (*SECRET_ENV, *INTEGRATION_CREDENTIALS):
                if variable in env:
                    assert "secretKeyRef" in env[variable]["valueFrom"], f"{where} {variable}"
            url = env.get("INTENTGATE_DATABASE_URL")
            if url is not None and "value" in url:
                assert url["value"].startswith("sqlite:"), f"{where}: a database URL with credentials, inline"


def test_every_credential_the_control_plane_reads_is_known_here() -> None:
    # A new credential variable in control-plane/src fails here until it is wired below or named an integration's.
    assert credentials_read_by_the_control_plane() == {*SECRET_ENV, *INTEGRATION_CREDENTIALS}


@pytest.mark.parametrize("name", APPLIED)
def test_the_control_plane_gets_every_credential_it_needs_from_a_secret(name: str, rendered: dict[str, Any]) -> None:
    env = env_of(control_plane(rendered[name]))
    for variable in SECRET_ENV:
        assert variable in env, f"{name}: the control plane's {variable} is not set (its endpoints would answer 503)"
        reference = env[variable]["valueFrom"]["secretKeyRef"]
        # Only the per-tenant admin tokens may be left out: the superadmin token is enough to run.
        assert reference.get("optional", False) == (variable == "INTENTGATE_TENANT_ADMIN_TOKENS"), variable


@pytest.mark.parametrize("name", APPLIED)
def test_readme_creates_every_secret_the_manifests_reference(name: str, rendered: dict[str, Any]) -> None:
    created = secrets_readme_creates()
    for resource in rendered[name]:
        namespace = resource["metadata"].get("namespace", "")
        for where, template in pod_templates([resource]):
            for secret, key in secret_references(template["spec"]):
                assert key in created.get((namespace, secret), set()), (
                    f"{where} reads key {key} of Secret {namespace}/{secret}, which README's deployment steps do not "
                    "create"
                )


@pytest.mark.parametrize("name", APPLIED)
def test_every_container_runs_unprivileged_on_a_read_only_root(name: str, rendered: dict[str, Any]) -> None:
    for where, template in pod_templates(rendered[name]):
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        for container in all_containers(pod):
            context = container["securityContext"]
            user = context.get("runAsUser", pod["securityContext"].get("runAsUser"))
            assert isinstance(user, int) and user > 0, f"{where}/{container['name']}: numeric non-root user"
            assert context["allowPrivilegeEscalation"] is False, f"{where}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, f"{where}/{container['name']}"
            assert context["capabilities"]["drop"] == ["ALL"], f"{where}/{container['name']}"
            assert "add" not in context["capabilities"], f"{where}/{container['name']}"
            assert "memory" in container["resources"]["limits"], f"{where}/{container['name']}"


def test_control_plane_namespace_enforces_the_restricted_pod_security_standard(rendered: dict[str, Any]) -> None:
    namespace = find(rendered["base"], "Namespace", "intentgate")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_control_plane_is_probed_on_healthz(rendered: dict[str, Any]) -> None:
    container = control_plane(rendered["production"])
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    # Liveness must not follow the database: an outage would restart every replica at once.
    assert "httpGet" not in container["livenessProbe"]


def test_control_plane_serves_rest_and_grpc_on_the_ports_its_services_expose(rendered: dict[str, Any]) -> None:
    resources = rendered["production"]
    container = control_plane(resources)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = env_of(container)
    assert env["INTENTGATE_HTTP_ADDR"]["value"] == f"0.0.0.0:{ports['http']}"
    assert env["INTENTGATE_GRPC_ADDR"]["value"] == f"0.0.0.0:{ports['grpc']}"
    for service in ("intentgate-control-plane", "intentgate-control-plane-headless"):
        exposed = {p["name"]: p for p in find(resources, "Service", service)["spec"]["ports"]}
        assert exposed["http"]["targetPort"] == "http"
        assert exposed["grpc"]["targetPort"] == "grpc"
        # Meshes (and anyone reading) must know 8082 is HTTP/2.
        assert exposed["grpc"]["appProtocol"] == "grpc"
    assert find(resources, "Service", "intentgate-control-plane-headless")["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("sidecar", SIDECARS, ids=str)
def test_kubernetes_sidecar_configuration_is_the_envoy_directory_one(sidecar: Sidecar, rendered: dict[str, Any]) -> None:
    assert sidecar.copy.read_text() == sidecar.envoy.read_text(), (
        f"{rel(sidecar.copy)} differs from {rel(sidecar.envoy)}: copy the latter over the former"
    )
    (config_map,) = [
        r for r in rendered[sidecar.render] if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("intentgate-envoy")
    ]
    assert config_map["data"]["envoy.yaml"] == sidecar.envoy.read_text()


def headless_service_port(base: list[dict[str, Any]], host: str, port: int) -> str:
    """The name of the port of the headless control-plane Service that ``host:port`` reaches."""
    service_name, namespace, *_ = host.split(".")
    service = find(base, "Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    assert service["spec"]["clusterIP"] == "None", "a headless Service: DNS names every Ready replica"
    (name,) = [p["name"] for p in service["spec"]["ports"] if p["port"] == port]
    return name


@pytest.mark.parametrize("sidecar", SIDECARS, ids=str)
def test_sidecar_dials_the_control_plane_services_the_manifests_define(sidecar: Sidecar, rendered: dict[str, Any]) -> None:
    base = rendered["base"]
    envoy = yaml_documents(sidecar.envoy)[0]
    by_name = clusters(envoy)
    control_plane = plugin_configuration(listeners(envoy)["gateway"])["control_plane"]
    dialled = {"intentgate_control_plane_http": "http"}
    if "cluster" in control_plane:
        dialled[control_plane["cluster"]] = "grpc"
    else:
        # The native module dials the gRPC port itself.
        url = urlsplit(control_plane["address"])
        assert url.scheme == "http" and url.hostname and url.port
        assert headless_service_port(base, url.hostname, url.port) == "grpc"
    for cluster_name, port_name in dialled.items():
        (address,) = endpoint_addresses(by_name[cluster_name])
        # STRICT_DNS on a headless Service: Envoy sees, and balances over, every Ready replica.
        assert by_name[cluster_name]["type"] == "STRICT_DNS"
        assert headless_service_port(base, address["address"], address["port_value"]) == port_name, cluster_name


@pytest.mark.parametrize("sidecar", SIDECARS, ids=str)
def test_tool_server_is_reachable_only_through_its_sidecar(sidecar: Sidecar, rendered: dict[str, Any]) -> None:
    resources = rendered[sidecar.render]
    pod = find(resources, "Deployment", "mcp-tool-server")["spec"]["template"]["spec"]
    (envoy,) = [c for c in pod["initContainers"] if c["name"] == "intentgate-envoy"]
    (tool,) = [c for c in pod["containers"] if c["name"] == "tool-server"]
    # A native sidecar: up before the tool server, down after it.
    assert envoy["restartPolicy"] == "Always"
    envoy_ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    tool_ports = {p["containerPort"] for p in tool["ports"]}
    (service_port,) = find(resources, "Service", "mcp-tool-server")["spec"]["ports"]
    assert service_port["targetPort"] == "gateway"
    allowed = [p["port"] for rule in find(resources, "NetworkPolicy", "mcp-tool-server")["spec"]["ingress"] for p in rule["ports"]]
    assert sorted(allowed) == ["gateway", "probes"]
    # What Envoy listens on and forwards to is what the pod declares.
    document = yaml_documents(sidecar.envoy)[0]
    assert listeners(document)["gateway"]["address"]["socket_address"]["port_value"] == envoy_ports["gateway"]
    assert listeners(document)["probes"]["address"]["socket_address"]["port_value"] == envoy_ports["probes"]
    (upstream,) = endpoint_addresses(clusters(document)["tool_server"])
    assert upstream["address"] == "127.0.0.1" and upstream["port_value"] in tool_ports


@pytest.mark.parametrize("sidecar", SIDECARS, ids=str)
def test_filter_image_is_mounted_where_the_sidecar_configuration_loads_it(
    sidecar: Sidecar, rendered: dict[str, Any]
) -> None:
    pod = find(rendered[sidecar.render], "Deployment", "mcp-tool-server")["spec"]["template"]["spec"]
    (envoy,) = [c for c in pod["initContainers"] if c["name"] == "intentgate-envoy"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in envoy["volumeMounts"]}
    # kustomize's images list reaches the image volume (kustomizeconfig.yaml).
    assert volumes["intentgate-filter"]["image"]["reference"] == sidecar.image
    assert sidecar.module == mounts["intentgate-filter"]["mountPath"] + "/" + Path(sidecar.module).name
    assert sidecar.filename() == sidecar.module
    config_path = envoy["args"][envoy["args"].index("--config-path") + 1]
    assert config_path == mounts["envoy-config"]["mountPath"] + "/envoy.yaml"
    assert envoy["args"][envoy["args"].index("--concurrency") + 1] == "2"


def test_control_plane_grpc_port_admits_only_pods_running_the_filter(rendered: dict[str, Any]) -> None:
    policy = find(rendered["base"], "NetworkPolicy", "intentgate-control-plane")
    grpc_rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == "grpc" for p in r["ports"])]
    assert len(grpc_rules) == 1
    (source,) = grpc_rules[0]["from"]
    label = source["podSelector"]["matchLabels"]
    assert label == {"intentgate.io/filter": "true"}
    tool_server = find(rendered["tool-server"], "Deployment", "mcp-tool-server")
    assert label.items() <= tool_server["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("sidecar", SIDECARS, ids=str)
def test_sidecar_presents_the_filter_token_the_control_plane_requires(sidecar: Sidecar, rendered: dict[str, Any]) -> None:
    token = env_of(control_plane(rendered["production"]))["INTENTGATE_FILTER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "intentgate-control-plane", "key": "filter-token"}, "required, from the Secret"
    pod = find(rendered[sidecar.render], "Deployment", "mcp-tool-server")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "intentgate-filter-token"
    # Only Envoy mounts it, readable by its group alone.
    assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 65532
    mounted_by = [c["name"] for c in all_containers(pod) for m in c.get("volumeMounts", []) if m["name"] == volume["name"]]
    assert mounted_by == ["intentgate-envoy"]
    (envoy,) = [c for c in pod["initContainers"] if c["name"] == "intentgate-envoy"]
    assert envoy["securityContext"]["runAsGroup"] == 65532
    (mount,) = [m for m in envoy["volumeMounts"] if m["name"] == volume["name"]]
    # Mounted whole, not by subPath: the kubelet rewrites the file when the Secret is rotated.
    assert "subPath" not in mount
    (item,) = volume["secret"]["items"]
    assert f"{mount['mountPath']}/{item['path']}" == IN_CONTAINER_FILTER_TOKEN
    # ...which is the file the wasm sidecar's credential injector reads, or the native module itself.
    document = yaml_documents(sidecar.envoy)[0]
    if sidecar.module == IN_CONTAINER_NATIVE_FILTER:
        assert "secrets" not in document["static_resources"]
        assert plugin_configuration(listeners(document)["gateway"])["control_plane"]["token_file"] == IN_CONTAINER_FILTER_TOKEN
    else:
        secrets = document["static_resources"]["secrets"]
        assert [s["generic_secret"]["secret"]["filename"] for s in secrets] == [IN_CONTAINER_FILTER_TOKEN]


def credentials_read_by_the_control_plane() -> set[str]:
    """Every INTENTGATE_* variable named in the control plane's source that holds a credential."""
    names: set[str] = set()
    for path in CONTROL_PLANE_SOURCES.rglob("*.rs"):
        names |= set(re.findall(r'"(INTENTGATE_[A-Z0-9_]+)"', path.read_text()))
    return {n for n in names if n.endswith(("_TOKEN", "_TOKENS", "_KEY", "_SECRET"))}


def secret_references(pod: dict[str, Any]) -> set[tuple[str, str]]:
    """(Secret, key) of every environment variable and volume of a pod that reads a Secret."""
    found = set()
    for container in all_containers(pod):
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                found.add((reference["name"], reference["key"]))
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            found |= {(volume["secret"]["secretName"], item["key"]) for item in volume["secret"].get("items", [])}
    return found


def secrets_readme_creates() -> dict[tuple[str, str], set[str]]:
    """Keys of each (namespace, Secret) that README's "Deploy on Kubernetes" creates with kubectl, including the
    keys its comments add for production or as options."""
    created: dict[tuple[str, str], set[str]] = {}
    section = readme_section("Deploy on Kubernetes")
    for command in section.split("kubectl ")[1:]:
        match = re.match(r"-n (\S+) create secret generic (\S+)", command)
        if match:
            created[(match[1], match[2])] = set(re.findall(r"--from-literal=([a-z0-9-]+)=", command))
    return created
