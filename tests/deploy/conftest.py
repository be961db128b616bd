"""Fixtures for the deployment tests: rendered kustomizations (once per session) and a test TLS directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .support import KUSTOMIZATIONS, make_test_certificate, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """``kubectl kustomize`` of every kustomization in the repository, by name (see support.KUSTOMIZATIONS)."""
    return {name: render(directory) for name, directory in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
