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


def persistent_secret(name: str, make: callable) -> str:
    """A secret kept in .run/ so restarts keep tokens and the database usable."""
    path = RUN_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def public_key_of(seed_b64: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def filter_configuration(public_key: str) -> str:
    """Until filters sync from the control plane, the gateway state is given to the filter statically."""
    return json.dumps(
        {
            "gateway": {
                "keys": [{"public_key": public_key}],
                "tenants": {DEMO_TENANT: {"policy": {"rego": DEMO_POLICY.read_text()}}},
            }
        }
    )


def envoy_bootstrap(public_key: str) -> PreparedBootstrap:
    document = load_yaml_bootstrap(REPO / "envoy" / "standalone.yaml")
    for listener in document["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "intentgate":
                        http_filter["typed_config"]["config"]["configuration"]["value"] = filter_configuration(public_key)
    return PreparedBootstrap(document)


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
        "INTENTGATE_HTTP_ADDR": os.environ.get("INTENTGATE_HTTP_ADDR", CONTROL_PLANE_ADDR),
    }
    control_plane = ManagedProcess(
        "control-plane", [str(BIN / "intentgate-control-plane")], log_path=RUN_DIR / "control-plane.log", env=env
    ).start()
    upstream = start_everything(UPSTREAM_PORT, log_path=RUN_DIR / "upstream.log")
    envoy = start_envoy(envoy_bootstrap(public_key_of(master_key)), RUN_DIR / "envoy", timeout=120)
    try:
        wait_healthy(f"{GATEWAY}/healthz")
        minted = httpx.post(
            f"{GATEWAY}/v1/admin/mint",
            headers={"authorization": f"Bearer {admin_token}"},
            json={"subject": "demo-agent", "tenant": DEMO_TENANT, "tools": ["echo", "get-sum", "get-env"]},
            timeout=10,
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

  admin token       {admin_token}
  demo tenant       {DEMO_TENANT}   (policy: envoy/demo-policy.rego)
  capability token  minted for demo-agent, tools echo, get-sum, get-env:

export TOKEN={token}

# open an MCP session, then make an allowed call (echo) and a denied one (get-env, -32012):
SID=$(curl -si {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" {accept} -d '{init}' | tr -d '\\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{{print $2}}')
curl -s {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SID" {accept} -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hello"}}}}}}'
curl -s {GATEWAY}/v1/mcp -H "authorization: Bearer $TOKEN" -H "mcp-session-id: $SID" {accept} -d '{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"get-env","arguments":{{}}}}}}'

# the audit chain of the demo tenant:
curl -s '{GATEWAY}/v1/admin/audit?tenant={DEMO_TENANT}' -H 'authorization: Bearer {admin_token}'
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
