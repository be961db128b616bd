"""IntentGate pieces for the end-to-end tests: keys and tokens through the real `intentgate` CLI, the
filter's plugin configuration, and the filter entries that load a build of it: the wasm filter
(`envoy.filters.http.wasm`) or the native module (`envoy.filters.http.dynamic_modules`). A `Build` names one
of the two, so a test runs against either.

Importable without pytest (scripts/run.py uses it)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .native import dynamic_module_filter
from .processes import REPO_ROOT

WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "intentgate_filter.wasm"
NATIVE = REPO_ROOT / "target" / "native" / "libintentgate_native.so"
CLI = REPO_ROOT / "target" / "debug" / "intentgate"
DEMO_POLICY = REPO_ROOT / "envoy" / "demo-policy.rego"

_WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
_STRING_TYPE = "type.googleapis.com/google.protobuf.StringValue"


def cli(*args: str, cli_path: Path = CLI, stdin: str | None = None) -> dict[str, Any]:
    """Runs the intentgate CLI and returns its JSON output; raises with its stderr on failure."""
    done = subprocess.run([str(cli_path), *args], capture_output=True, text=True, timeout=30, input=stdin)
    if done.returncode != 0:
        raise RuntimeError(f"intentgate {' '.join(args[:1])} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


@dataclass(frozen=True)
class Issuer:
    """A signing key, made and used through the CLI exactly as an operator would."""

    seed: str
    public_key: str
    kid: str
    cli_path: Path = CLI

    @classmethod
    def generate(cls, cli_path: Path = CLI) -> Issuer:
        key = cli("keygen", cli_path=cli_path)
        return cls(seed=key["seed"], public_key=key["public_key"], kid=key["kid"], cli_path=cli_path)

    def mint(
        self,
        subject: str,
        tenant: str,
        *,
        tools: list[str] | None = None,
        ttl: int = 3600,
        max_calls: int | None = None,
        step_up: bool = False,
        now: int | None = None,
        memory_key: bool = False,
    ) -> dict[str, Any]:
        args = ["mint", "--key", self.seed, "--subject", subject, "--tenant", tenant, "--ttl", str(ttl)]
        if tools is not None:
            args += ["--tools", ",".join(tools)]
        if max_calls is not None:
            args += ["--max-calls", str(max_calls)]
        if step_up:
            args.append("--step-up")
        if now is not None:
            args += ["--now", str(now)]
        if memory_key:
            args.append("--with-memory-signing-key")
        return cli(*args, cli_path=self.cli_path)

    def token(self, subject: str, tenant: str, **kwargs: Any) -> str:
        return self.mint(subject, tenant, **kwargs)["token"]


def compiled_policy(rego: str, *, cli_path: Path = CLI) -> dict[str, Any]:
    """A tenant's `policy` entry: the Rego compiled to bytecode by `intentgate compile`, as an operator
    prepares a standalone configuration (the filter does not compile Rego)."""
    return cli("compile", "-", cli_path=cli_path, stdin=rego)["policy"]


def tenant_config(
    policy: str | None,
    *,
    settings: dict[str, Any] | None = None,
    intent_rules: list[dict[str, Any]] | None = None,
    cli_path: Path = CLI,
) -> dict[str, Any]:
    tenant: dict[str, Any] = {}
    if policy is not None:
        tenant["policy"] = compiled_policy(policy, cli_path=cli_path)
    if settings:
        tenant["settings"] = settings
    if intent_rules:
        tenant["intent_rules"] = intent_rules
    return tenant


def plugin_config(
    public_keys: list[str],
    tenants: dict[str, dict[str, Any]],
    *,
    revocations: list[str] | None = None,
    serve_tenants: list[str] | None = None,
    intent_extractor: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The filter's plugin configuration (filter/wasm/src/config.rs)."""
    gateway: dict[str, Any] = {
        "keys": [{"public_key": k} for k in public_keys],
        "tenants": tenants,
        "revocations": revocations or [],
    }
    if serve_tenants is not None:
        gateway["serve_tenants"] = serve_tenants
    config: dict[str, Any] = {"gateway": gateway, **extra}
    if intent_extractor is not None:
        config["intent_extractor"] = intent_extractor
    return config


def wasm_filter(plugin: dict[str, Any], *, wasm: Path = WASM, vm_id: str = "intentgate") -> dict[str, Any]:
    """The `envoy.filters.http.wasm` entry that loads the IntentGate filter with this configuration."""
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": _WASM_TYPE,
            "config": {
                "name": "intentgate",
                "root_id": "intentgate",
                # Without it, pausing in the headers callback means the body callback never fires.
                "allow_on_headers_stop_iteration": True,
                "configuration": {"@type": _STRING_TYPE, "value": json.dumps(plugin)},
                "vm_config": {
                    "vm_id": vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm)}},
                },
            },
        },
    }


def native_filter(plugin: dict[str, Any], *, module: Path = NATIVE) -> dict[str, Any]:
    """The `envoy.filters.http.dynamic_modules` entry that loads the native IntentGate module (by path) with
    this configuration, the same JSON the wasm filter takes."""
    return dynamic_module_filter(module, plugin)


@dataclass(frozen=True)
class Build:
    """One build of the filter: how Envoy loads it, and where what it exposes differs."""

    name: Literal["wasm", "native"]

    def filter(self, plugin: dict[str, Any]) -> dict[str, Any]:
        """The HTTP filter entry running this build with the plugin configuration ``plugin``."""
        return wasm_filter(plugin) if self.name == "wasm" else native_filter(plugin)

    def stat(self, name: str) -> str:
        """The Envoy stat of the filter's metric ``name`` (``intentgate.tool_calls.allow``)."""
        return f"{'wasmcustom' if self.name == 'wasm' else 'dynamicmodulescustom'}.{name}"

    def subscriptions(self, concurrency: int = 2) -> int:
        """Sync streams one Envoy opens to the control plane: one per wasm VM (each worker and the main thread),
        one per process for the native module."""
        return concurrency + 1 if self.name == "wasm" else 1

    def audit_buffers(self, concurrency: int = 2) -> int:
        """Audit buffers serving requests: one per worker VM (wasm), one per process (native)."""
        return concurrency if self.name == "wasm" else 1

    @property
    def log_marker(self) -> str:
        """What Envoy's log lines written by the filter carry."""
        return "] wasm log" if self.name == "wasm" else "[dynamic_modules]"

    def __str__(self) -> str:
        return self.name


BUILDS = (Build("wasm"), Build("native"))
