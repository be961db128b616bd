"""The runtime paths' contract (api/openapi.yaml, tag Runtime) through real Envoy with the built filter, the
real control plane and @modelcontextprotocol/server-everything: schemathesis generates requests (valid,
invalid, with and without a live session, unauthenticated) with a capability token minted for the run and
every check passes, for what the gateway refuses and for the tool server's answers it forwards (JSON and
event streams)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .runtime_gateway import (
    DENIED_TOOL,
    ESCALATED_TOOL,
    INVOICE_PROMPT,
    SAFE_TOOLS,
    TENANT,
    RuntimeGateway,
)
from .runtime_messages import SPEC

TESTS_DIR = Path(__file__).resolve().parents[1]
# Fixed by default so CI is reproducible; set SCHEMATHESIS_SEED to explore.
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_RUNTIME_EXAMPLES", "25")


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def schemathesis_config(session_id: str) -> str:
    """The run's configuration. Generated values are drawn, often, from what this system knows: its live
    session, the tools its policy allows, denies and escalates, the prompt its intent rules narrow, its
    tenant; otherwise schemathesis makes them up."""
    return f"""
hooks = "contract.runtime_checks"
headers = {{ Authorization = "Bearer ${{INTENTGATE_CONTRACT_TOKEN}}", Accept = "application/json, text/event-stream" }}

[checks]
enabled = true
# A refused message is a JSON-RPC error under HTTP 200 (SPEC §3), so these built-in checks cannot tell a
# refusal from an acceptance; contract/runtime_checks.py judges both from the answer and the upstream.
negative_data_rejection.enabled = false
ignored_auth.enabled = false
# Valid JSON-RPC is refused on purpose (capability, intent, policy, budget).
positive_data_acceptance.enabled = false

[dictionaries]
session = {{ values = {toml_list([session_id])} }}
tools = {{ values = {toml_list([*SAFE_TOOLS, DENIED_TOOL, ESCALATED_TOOL])} }}
prompts = {{ values = {toml_list([INVOICE_PROMPT, "say hello"])} }}
tenants = {{ values = {toml_list([TENANT])} }}

[[operations]]
include-method = "POST"
# Without a token a request is answered 401 with its -32010 errors; checked by
# capability_tokens_are_enforced instead.
checks.missing_required_header.enabled = false
[operations.parameters]
"header.Mcp-Session-Id" = {{ dictionary = "session", probability = 0.8 }}
"header.X-Intent-Prompt" = {{ dictionary = "prompts", probability = 0.5 }}
"header.X-IntentGate-Tenant" = {{ dictionary = "tenants", probability = 0.8 }}
"body.params.name" = {{ dictionary = "tools", probability = 0.6 }}
"body.[*].params.name" = {{ dictionary = "tools", probability = 0.6 }}

[[operations]]
include-method = "GET"
# The live session's stream stays open: read it for half a second (later GETs get 409 while one is open).
request-timeout = 0.5
[operations.parameters]
"header.Mcp-Session-Id" = {{ dictionary = "session", probability = 0.05 }}
"header.X-IntentGate-Tenant" = {{ dictionary = "tenants", probability = 0.8 }}

# The protected-resource metadata paths: Envoy's HTTP/1 codec answers the check's QUERY with a bodiless 400
# before any filter runs (plain Envoy does the same); the filter's 405 with `Allow: GET, HEAD` for the other
# methods is asserted in test_runtime_answers.py.
[[operations]]
include-path-regex = '^/\\.well-known/'
checks.unsupported_method.enabled = false

# Never the live session: ending it would leave the other operations without one.
[[operations]]
include-method = "DELETE"
[operations.parameters]
"header.X-IntentGate-Tenant" = {{ dictionary = "tenants", probability = 0.8 }}
"""


def filter_stat(gateway: RuntimeGateway, name: str) -> int:
    return sum(gateway.envoy.stats(r"^wasmcustom\.intentgate\." + name.replace(".", r"\.") + "$").values())


def test_the_runtime_paths_match_the_contract_through_envoy(gateway: RuntimeGateway, tmp_path: Path) -> None:
    token = gateway.token()
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(gateway.open_session(token)))
    upstream_before = gateway.upstream_requests()
    access_log_before = len(gateway.envoy.access_log())
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        INTENTGATE_CONTRACT_TOKEN=token,
        INTENTGATE_CONTRACT_FOREIGN_TOKEN=gateway.foreign_token(),
        INTENTGATE_CONTRACT_ENVOY_ADMIN=gateway.envoy.admin_url,
    )
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(cli), "--config-file", str(config), "run", str(SPEC), "--url", gateway.base_url,
         "--include-tag", "Runtime", "--phases", "examples,coverage,fuzzing", "--max-examples", MAX_EXAMPLES,
         "--seed", SEED, "--workers", "1", "--request-timeout", "10",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # The run covered both sides of the gateway: answers the tool server gave (event streams, its own
    # refusals), the gateway's refusals of every kind, and each check of the pipeline.
    assert gateway.upstream_requests() - upstream_before > 50, result.stdout[-3000:]
    seen = answers_seen(gateway, access_log_before)
    for method, status, content_type in (
        ("POST", 200, "text/event-stream"), ("POST", 200, "application/json"), ("POST", 202, ""),
        ("POST", 400, "application/json"), ("POST", 401, "application/json"), ("GET", 200, "text/event-stream"),
        ("GET", 401, "application/json"), ("DELETE", 400, "application/json"), ("DELETE", 401, "application/json"),
    ):
        assert (method, status, content_type) in seen, f"no {method} answered {status} {content_type}: {sorted(seen)}"
    # (Escalations are rarer in generated traffic: test_runtime_answers.py provokes each code on purpose.)
    for stat in ("tool_calls.allow", "tool_calls.deny.capability", "tool_calls.deny.intent", "tool_calls.deny.policy",
                 "requests.deny"):
        assert filter_stat(gateway, stat) > 0, f"the generated traffic never reached intentgate.{stat}"


def answers_seen(gateway: RuntimeGateway, skip: int) -> set[tuple[str, int, str]]:
    """(method, status, media type) of every answer in Envoy's access log after its first `skip` entries."""
    time.sleep(0.2)  # the access log is flushed every 50 ms
    seen = set()
    for entry in gateway.envoy.access_log()[skip:]:
        content_type = entry.get("content_type") or "-"
        seen.add((entry["method"], int(entry["status"]), "" if content_type == "-" else content_type.split(";")[0]))
    return seen
