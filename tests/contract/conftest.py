"""Fixtures for the runtime contract tests: one gateway system for the whole run (see runtime_gateway.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .runtime_gateway import RuntimeGateway, runtime_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeGateway]:
    with runtime_gateway(tmp_path_factory.mktemp("runtime")) as running:
        yield running
