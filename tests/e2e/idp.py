"""A real OpenID provider (`oidc-provider`, npm) for the token endpoint's tests: `tests/oidc-idp.mjs` on a
free loopback port, issuing RS256 JWT access tokens by client_credentials for the resource a client names.

Importable without pytest::

    with start_idp(workdir) as idp:
        jwt = idp.access_token(resource="http://127.0.0.1:8081")   # aud = that resource

Two providers started with the same ``keys_file`` and ``issuer`` issue tokens of one issuer; a negative
``clock_offset`` makes one whose tokens have already expired.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from .peers import TESTS_DIR, node_binary
from .processes import ManagedProcess, ProcessStartError

IDP_SCRIPT = TESTS_DIR / "oidc-idp.mjs"
IDP_PACKAGE = TESTS_DIR / "node_modules" / "oidc-provider"
CLIENT_ID = "agent-runner"
CLIENT_SECRET = "agent-runner-secret-0123456789"


@dataclass
class Idp:
    process: ManagedProcess
    issuer: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def access_token(self, resource: str) -> str:
        """A JWT access token for CLIENT_ID, addressed to `resource` (its `aud`)."""
        answer = httpx.post(
            f"{self.url}/token",
            data={"grant_type": "client_credentials", "scope": "mcp", "resource": resource},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
            trust_env=False,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> Idp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_idp(
    workdir: Path,
    *,
    name: str = "idp",
    keys_file: Path | None = None,
    issuer: str | None = None,
    clock_offset: int = 0,
    timeout: float = 30,
) -> Idp:
    if not (IDP_PACKAGE / "package.json").is_file():
        raise ProcessStartError(f"{IDP_PACKAGE} is missing: run `make node-tools` (npm ci in tests/)")
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR", "LANG") if k in os.environ}
    env.update(
        IDP_READY_FILE=str(ready),
        IDP_KEYS_FILE=str(keys_file or workdir / f"{name}.keys.json"),
        IDP_CLOCK_OFFSET_SECONDS=str(clock_offset),
        IDP_CLIENT_ID=CLIENT_ID,
        IDP_CLIENT_SECRET=CLIENT_SECRET,
    )
    if issuer:
        env["IDP_ISSUER"] = issuer
    log_path = workdir / f"{name}.log"
    process = ManagedProcess(name, [node_binary(), str(IDP_SCRIPT)], log_path=log_path, env=env, cwd=TESTS_DIR).start()
    try:
        info = process.wait_until(
            lambda: json.loads(ready.read_text()) if ready.exists() else None, timeout=timeout, what="listened"
        )
    except BaseException:
        process.stop()
        raise
    return Idp(process=process, issuer=info["issuer"], port=int(info["port"]), log_path=log_path)
