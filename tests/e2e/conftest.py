"""Fixtures for the end-to-end tests: real server-everything, real Envoy, real MCP client.

- ``everything`` (session): server-everything on 127.0.0.1, a free port. ``.url`` is its MCP endpoint.
- ``plain_envoy`` (session): Envoy without any IntentGate filter in front of ``everything``: the baseline.
- ``envoy_factory`` (function): ``envoy_factory(config=None, **start_envoy_kwargs) -> Envoy``; ``config``
  defaults to a fresh ``EnvoyConfig`` for ``everything``. Every Envoy it started is stopped after the test.
- ``make_config`` (function): ``make_config(**fields) -> EnvoyConfig`` pointing at ``everything``.
- ``build`` (session, parametrized): the filter build a test runs against, ``wasm`` then ``native``
  (``gateway.Build``: ``build.filter(plugin)``, ``build.stat(name)``, ``build.subscriptions()``). A test that
  takes it, directly or through its fixtures, runs once per build.

For module- or session-scoped Envoys with a filter, use ``start_envoy`` directly in a fixture of that scope
(a context manager): ``with start_envoy(config, tmp_path_factory.mktemp("gw")) as envoy: yield envoy``.

When a test fails, the tails of the logs of the peers it used are attached to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy
from .gateway import BUILDS, Build
from .peers import EverythingServer, start_everything
from .processes import tail


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=BUILDS, ids=str)
def build(request: pytest.FixtureRequest) -> Build:
    return request.param


@pytest.fixture(scope="session")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EverythingServer]:
    log_dir = tmp_path_factory.mktemp("everything")
    with start_everything(log_path=log_dir / "everything.log") as server:
        yield server


@pytest.fixture(scope="session")
def plain_envoy(everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    with start_envoy(EnvoyConfig(upstream_port=everything.port), tmp_path_factory.mktemp("plain-envoy")) as envoy:
        yield envoy


@pytest.fixture
def make_config(everything: EverythingServer) -> Callable[..., EnvoyConfig]:
    def make(**fields: Any) -> EnvoyConfig:
        return EnvoyConfig(upstream_port=everything.port, **fields)

    return make


class EnvoyFactory:
    """Starts Envoys for one test, each in its own directory; stops them all at teardown."""

    def __init__(self, default_config: Callable[[], EnvoyConfig], base_dir: Path) -> None:
        self._default_config = default_config
        self._base_dir = base_dir
        self.started: list[Envoy] = []

    def __call__(self, config: EnvoyConfig | None = None, **kwargs: Any) -> Envoy:
        workdir = self._base_dir / f"envoy-{len(self.started)}"
        envoy = start_envoy(config if config is not None else self._default_config(), workdir, **kwargs)
        self.started.append(envoy)
        return envoy

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for envoy in reversed(self.started):
            try:
                envoy.stop()
            except BaseException as e:  # noqa: BLE001 - stop every one, then report
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def envoy_factory(make_config: Callable[..., EnvoyConfig], tmp_path: Path) -> Iterator[EnvoyFactory]:
    factory = EnvoyFactory(make_config, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


# --- log tails in failure reports ----------------------------------------------------------------


def _log_sections(name: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, EnvoyFactory):
        return [s for i, envoy in enumerate(value.started) for s in _log_sections(f"{name}[{i}]", envoy)]
    sections: list[tuple[str, str]] = []
    log_path = getattr(value, "log_path", None)
    if isinstance(log_path, Path):
        sections.append((f"{name}: {log_path}", tail(log_path, 40)))
    access_log_path = getattr(value, "access_log_path", None)
    if isinstance(access_log_path, Path):
        sections.append((f"{name}: {access_log_path}", tail(access_log_path, 20)))
    return sections


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for name, value in getattr(item, "funcargs", {}).items():
            for title, text in _log_sections(name, value):
                report.sections.append((f"log tail of {title}", text))
    return report
