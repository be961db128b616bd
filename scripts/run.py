#!/usr/bin/env python3
"""`make run`: the whole gateway on localhost:8080 on the embedded default.

Starts the control plane (SQLite in .run/), the demo upstream MCP server (server-everything on
127.0.0.1:3001) and Envoy with the IntentGate filter from envoy/standalone.yaml, then prints the admin
token, a minted capability token and commands to try. INTENTGATE_* variables set by the caller are
honoured (INTENTGATE_ADMIN_TOKEN, INTENTGATE_MASTER_KEY, INTENTGATE_DATABASE_URL, ...). Ctrl-C stops all.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from e2e.envoy import PreparedBootstrap, load_yaml_bootstrap, start_envoy  # noqa: E402
from e2e.gateway import DEMO_POLICY  # noqa: E402
from e2e.peers import start_everything  # noqa: E402
from e2e.processes import ManagedProcess  # noqa: E402

RUN_DIR = REPO / ".run"
BIN = REPO / "target" / "server"
GATEWAY = "http://localhost:8080"
DEMO_TENANT = "demo"
UPSTREAM_PORT = 3001
CONTROL_PLANE_ADDR = "127.0.0.1:8081"
CONTROL_PLANE_GRPC = "127.0.0.1:8082"


def persistent_secret(name: str, make: callable) -> str:
    """A secret kept in .run/ so restarts keep tokens and the database usable."""
    path = RUN_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def envoy_bootstrap() -> PreparedBootstrap:
    return PreparedBootstrap(load_yaml_bootstrap(REPO / "envoy" / "standalone.yaml"))


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become healthy within {timeout:.0f}s")


def ensure_demo_policy(admin: httpx.Client) -> None:
    """Promotes envoy/demo-policy.rego for the demo tenant unless it already has an active policy."""
    if admin.get("/v1/admin/policies/active", params={"tenant": DEMO_TENANT}).status_code == 200:
        return
    draft = admin.post(
        "/v1/admin/policies/drafts",
        json={"name": "demo", "rego_source": DEMO_POLICY.read_text(), "tenant": DEMO_TENANT, "created_by": "make run"},
    )
    draft.raise_for_status()
    promoted = admin.post("/v1/admin/policies/active", json={"draft_id": draft.json()["id"], "tenant": DEMO_TENANT})
    promoted.raise_for_status()


def wait_in_sync(admin: httpx.Client, timeout: float = 30) -> None:
    """Waits until Envoy's filter VMs acknowledged the control plane's current state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = admin.get("/v1/admin/filters").json()
        if any(f["connected"] and f["acked_version"] == status["state_version"] for f in status["filters"]):
            return
        time.sleep(0.2)
    raise SystemExit("Envoy's filter did not sync with the control plane; see .run/envoy/envoy.log")


def main() -> None:
    RUN_DIR.mkdir(exist_ok=True)
    admin_token = os.environ.get("INTENTGATE_ADMIN_TOKEN") or persistent_secret(
        "admin-token", lambda: secrets.token_urlsafe(32)
    )
    master_key = os.environ.get("INTENTGATE_MASTER_KEY") or persistent_secret(
        "master-key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    env = {
        **os.environ,
        "INTENTGATE_ADMIN_TOKEN": admin_token,
        "INTENTGATE_MASTER_KEY": master_key,
        "INTENTGATE_DATABASE_URL": os.environ.get(
            "INTENTGATE_DATABASE_URL", f"sqlite://{RUN_DIR / 'intentgate.db'}?mode=rwc"
        ),
        # envoy/standalone.yaml expects these two addresses.
        "INTENTGATE_HTTP_ADDR": CONTROL_PLANE_ADDR,
        "INTENTGATE_GRPC_ADDR": CONTROL_PLANE_GRPC,
        # The OAuth issuer: the gateway's own address (the token endpoint is routed through Envoy).
        "INTENTGATE_PUBLIC_URL": os.environ.get("INTENTGATE_PUBLIC_URL", GATEWAY),
    }
    control_plane = ManagedProcess(
        "control-plane", [str(BIN / "intentgate-control-plane")], log_path=RUN_DIR / "control-plane.log", env=env
    ).start()
    upstream = start_everything(UPSTREAM_PORT, log_path=RUN_DIR / "upstream.log")
    envoy = start_envoy(envoy_bootstrap(), RUN_DIR / "envoy", timeout=120)
    try:
        wait_healthy(f"{GATEWAY}/healthz")
        admin = httpx.Client(base_url=GATEWAY, headers={"authorization": f"Bearer {admin_token}"}, timeout=30)
        ensure_demo_policy(admin)
        wait_in_sync(admin)
        minted = admin.post(
            "/v1/admin/mint",
            json={"subject": "demo-agent", "tenant": DEMO_TENANT, "tools": ["echo", "get-sum", "get-env"]},
        )
        minted.raise_for_status()
        print_banner(admin_token, minted.json()["token"])
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        while not stop["now"] and all(p.is_running() for p in (control_plane, envoy)):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        envoy.stop()
        upstream.stop()
        control_plane.stop()
        print("\nstopped; logs are in .run/")


def print_banner(admin_token: str, token: str) -> None:
    accept = "-H 'accept: application/json, text/event-stream' -H 'content-type: application/json'"
    init = (
        '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        '"capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
    )
    print(
        f"""
IntentGate is running on {GATEWAY}   (Ctrl-C stops it; logs in .run/)

  admin console     {GATEWAY}/console/   (sign in with the admin token)
  admin token       {admin_token}
  demo tenant       {DEMO_TENANT}   (policy: envoy/demo-policy.rego, promoted through the admin API)
  capability token  minted for demo-agent, tools echo, get-sum, get-env:

export TOKEN={token}

# open an MCP session, then make an allowed call (echo) and a denied one (get-env, -32012):
SID=$(curl -si {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" {accept} -d '{init}' | tr -d '\\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{{print $2}}')
curl -s {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SID" {accept} -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hello"}}}}}}'
curl -s {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SID" {accept} -d '{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"get-env","arguments":{{}}}}}}'

# every decision lands in the demo tenant's audit chain (the filter ships it over gRPC):
curl -s '{GATEWAY}/v1/admin/audit?tenant={DEMO_TENANT}' -H 'authorization: Bearer {admin_token}'
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
