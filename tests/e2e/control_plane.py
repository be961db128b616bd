"""The real control plane for end-to-end tests: started from its binary with a temporary database (or a
given Postgres URL), a known master key and admin token, on free loopback ports; restartable; with an
admin client for the endpoints the tests drive. Importable without pytest."""

from __future__ import annotations

import base64
import functools
import os
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .processes import REPO_ROOT, ManagedProcess

BINARY = Path(os.environ.get("INTENTGATE_CONTROL_PLANE_BIN", REPO_ROOT / "target" / "debug" / "intentgate-control-plane"))
ADMIN_TOKEN = "e2e-superadmin-token-0123456789"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every admin client: making one loads the CA bundle (about 50 ms here), which each
    admin request would otherwise pay, and a benchmark timing admin calls would measure."""
    return ssl.create_default_context()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def public_key_of(seed_b64: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


@dataclass
class ControlPlane:
    workdir: Path
    database_url: str
    master_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    admin_token: str = ADMIN_TOKEN
    filter_token: str | None = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    binary: Path = BINARY
    extra_env: dict[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def public_key(self) -> str:
        return public_key_of(self.master_key)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTGATE_")}
        env.update(
            INTENTGATE_ADMIN_TOKEN=self.admin_token,
            INTENTGATE_MASTER_KEY=self.master_key,
            INTENTGATE_DATABASE_URL=self.database_url,
            INTENTGATE_HTTP_ADDR=f"127.0.0.1:{self.http_port}",
            INTENTGATE_GRPC_ADDR=f"127.0.0.1:{self.grpc_port}",
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        if self.filter_token:
            env["INTENTGATE_FILTER_TOKEN"] = self.filter_token
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.process = ManagedProcess(
            "control-plane", [str(self.binary)], log_path=self.workdir / f"control-plane-{self.starts}.log", env=self.env()
        ).start()
        client = httpx.Client(timeout=2, trust_env=False)

        def healthy() -> bool | None:
            try:
                return client.get(f"{self.url}/healthz").status_code == 200 or None
            except httpx.HTTPError:
                return None

        try:
            self.process.wait_until(healthy, timeout=timeout, what="answered /healthz")
        finally:
            client.close()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- admin API ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token or self.admin_token}", **kwargs.pop("headers", {})}
        with httpx.Client(timeout=30, trust_env=False, verify=tls_context()) as client:
            return client.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.request(method, path, **kwargs)
        if answer.status_code >= 300:
            raise AssertionError(f"{method} {path} -> {answer.status_code}: {answer.text}")
        return answer.json() if answer.content else None

    def mint(self, subject: str, tenant: str, **fields: Any) -> dict[str, Any]:
        return self.ok("POST", "/v1/admin/mint", json={"subject": subject, "tenant": tenant, **fields})

    def promote(self, tenant: str, rego: str, name: str = "e2e") -> dict[str, Any]:
        draft = self.ok(
            "POST", "/v1/admin/policies/drafts", json={"name": name, "rego_source": rego, "tenant": tenant}
        )
        return self.ok("POST", "/v1/admin/policies/active", json={"draft_id": draft["id"], "tenant": tenant})

    def revoke(self, jti: str, reason: str = "e2e", tenant: str | None = None) -> None:
        body = {"jti": jti, "reason": reason} | ({"tenant": tenant} if tenant else {})
        self.ok("POST", "/v1/admin/revoke", json=body)

    def filters(self) -> dict[str, Any]:
        return self.ok("GET", "/v1/admin/filters")

    def audit(self, tenant: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"tenant": tenant, "limit": 1000, **params}
            if cursor:
                query["cursor"] = cursor
            page = self.ok("GET", "/v1/admin/audit", params=query)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def verify(self, tenant: str) -> dict[str, Any]:
        return self.ok("GET", "/v1/admin/audit/verify", params={"tenant": tenant})

    def settings(self, tenant: str, **settings: Any) -> dict[str, Any]:
        return self.ok("PUT", f"/v1/admin/tenants/{tenant}/settings", json={"settings": settings})

    def pending(self, tenant: str) -> list[dict[str, Any]]:
        return self.ok("GET", "/v1/admin/approvals", params={"tenant": tenant})["items"]

    def decide(self, approval_id: str, decision: str, reason: str = "e2e", token: str | None = None) -> httpx.Response:
        return self.request(
            "POST",
            f"/v1/admin/approvals/{approval_id}/decide",
            token=token,
            json={"decision": decision, "reason": reason, "decided_by": "joe@example.com"},
        )


def protected_resource(port: int, issuer: str) -> dict[str, Any]:
    """The filter's resource-server settings for a gateway listening on 127.0.0.1:`port`, whose tokens come
    from the authorization server `issuer`."""
    return {"url": f"http://127.0.0.1:{port}", "authorization_servers": [issuer]}


def filter_config(control_plane: ControlPlane, cluster: str = "intentgate_control_plane", **bootstrap: Any) -> dict[str, Any]:
    """A plugin configuration that follows `control_plane` (an empty bootstrap: fail closed until synced). It
    serves both builds: the wasm filter reaches the control plane through the Envoy cluster `cluster`, the native
    module at its gRPC address."""
    plugin: dict[str, Any] = {
        "gateway": {"keys": [], "tenants": {}, **bootstrap},
        "control_plane": {"cluster": cluster, "address": f"http://127.0.0.1:{control_plane.grpc_port}", "tick_ms": 50},
    }
    if control_plane.filter_token:
        plugin["control_plane"]["token"] = control_plane.filter_token
    return plugin
