"""The real upstream MCP tool server: @modelcontextprotocol/server-everything over Streamable HTTP.

Importable without pytest::

    from e2e.peers import start_everything      # with <repo>/tests on sys.path
    with start_everything(log_path=Path("/tmp/everything.log")) as upstream:
        print(upstream.url)                      # http://127.0.0.1:<port>/mcp

The package binds every interface and has no bind-address option, so it is started through
``tests/everything-loopback.mjs``, which pins ``listen`` to 127.0.0.1 and reports the bound port.
Port 0 (the default) lets the kernel choose a free port: no races between parallel runs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .processes import REPO_ROOT, ManagedProcess, ProcessStartError, loopback_listening_ports

TESTS_DIR = REPO_ROOT / "tests"
EVERYTHING_WRAPPER = TESTS_DIR / "everything-loopback.mjs"
EVERYTHING_PACKAGE = TESTS_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything"
EVERYTHING_MCP_PATH = "/mcp"
"""The one HTTP path server-everything serves MCP on (POST, GET and DELETE); anything else is 404."""

# server-everything has a `get-env` tool that returns its whole environment: give it only what Node needs.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")


def node_binary() -> str:
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise ProcessStartError("node not found on PATH (set NODE=/path/to/node); Node.js 20 is required")
    return node


@dataclass
class EverythingServer:
    """A running server-everything. ``url`` is its MCP endpoint."""

    process: ManagedProcess
    host: str
    port: int
    log_path: Path
    ready_file: Path = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + EVERYTHING_MCP_PATH

    @property
    def mcp_path(self) -> str:
        return EVERYTHING_MCP_PATH

    @property
    def pid(self) -> int:
        return self.process.pid

    def listening_addresses(self) -> list[tuple[str, int]]:
        """Every (address, port) the server process listens on, read from /proc."""
        return loopback_listening_ports(self.pid)

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def is_running(self) -> bool:
        return self.process.is_running()

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> EverythingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_everything(
    port: int = 0,
    *,
    log_path: Path,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> EverythingServer:
    """Start server-everything in Streamable HTTP mode on ``host:port`` and wait until it listens.

    ``port=0`` picks a free port; the bound one is in the result. Raises ProcessStartError (with the
    tail of the server's log) if it exits or does not listen within ``timeout`` seconds.
    """
    if not (EVERYTHING_PACKAGE / "package.json").is_file():
        raise ProcessStartError(
            f"{EVERYTHING_PACKAGE} is missing: run `make node-tools` (npm install in tests/)"
        )
    log_path = Path(log_path)
    ready_file = log_path.with_name(log_path.name + ".ready.json")
    ready_file.unlink(missing_ok=True)
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(
        PORT=str(port),
        INTENTGATE_BIND_HOST=host,
        INTENTGATE_READY_FILE=str(ready_file),
        NODE_ENV="production",
    )
    process = ManagedProcess(
        "server-everything",
        [node_binary(), str(EVERYTHING_WRAPPER)],
        log_path=log_path,
        env=env,
        cwd=TESTS_DIR,
    ).start()
    try:
        info = process.wait_until(
            lambda: json.loads(ready_file.read_text()) if ready_file.exists() else None,
            timeout=timeout,
            what=f"listened on {host}:{port or '<any free port>'}",
        )
    except BaseException:
        process.stop()
        raise
    return EverythingServer(
        process=process, host=info["host"], port=int(info["port"]), log_path=log_path, ready_file=ready_file
    )


if __name__ == "__main__":  # pragma: no cover - manual use: python -m e2e.peers [port]
    import signal
    import sys
    import tempfile

    chosen = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    log = Path(tempfile.mkdtemp(prefix="everything-")) / "everything.log"
    with start_everything(chosen, log_path=log) as server:
        print(f"server-everything: {server.url} (pid {server.pid}, log {log}); Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
