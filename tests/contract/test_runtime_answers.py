"""Every answer the gateway gives on its runtime paths, provoked on purpose and checked against the contract
(api/openapi.yaml: documented status, content type, headers and body schema): each JSON-RPC code (-32700,
-32600, -32601, -32602, -32010, -32011, -32012, -32013, -32019, -32603), the 401 of a GET, DELETE or
notification without a valid token, the 400 of a header that is not UTF-8, the 202 of refused notifications,
the 405 (with `Allow`) of a method the paths do not serve, the JSON 200 that answers refused requests beside
forwarded notifications, and the tool server's own answers passed through (event streams, 406, 409, 415, a
400 merged with the gateway's errors)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from e2e.control_plane import free_port
from e2e.rpc import ACCEPT, encode, initialize_request, messages_in, notification, padded_tool_call, request, tool_call
from e2e.test_control_plane import gateway_envoy, wait_for

from .runtime_gateway import BUILD, DENIED_TOOL, ESCALATED_TOOL, INVOICE_PROMPT, TENANT, RuntimeGateway
from .runtime_messages import SPEC

CONFORMANCE = [status_code_conformance, content_type_conformance, response_headers_conformance,
               response_schema_conformance]
PATHS = ("/v1/mcp", "/v1/tool-call")


@pytest.fixture(scope="module")
def contract() -> Any:
    return schemathesis.openapi.from_path(str(SPEC))


@pytest.fixture(scope="module")
def token(gateway: RuntimeGateway) -> str:
    return gateway.token()


@pytest.fixture(scope="module")
def gateway_foreign_token(gateway: RuntimeGateway) -> str:
    return gateway.foreign_token()


@pytest.fixture(scope="module")
def session(gateway: RuntimeGateway, token: str) -> str:
    return gateway.open_session(token)


@dataclass
class Exchange:
    """One request through the gateway and its answer, checked against the contract on demand."""

    method: str
    path: str
    response: httpx.Response
    reached_upstream: int

    def conforms(self, contract: Any) -> Exchange:
        operation = contract[self.path][self.method]
        operation.Case(method=self.method).validate_response(self.response, checks=CONFORMANCE)
        return self

    def messages(self) -> list[dict[str, Any]]:
        return messages_in(self.response.headers.get("content-type", ""), self.response.content)

    def error(self) -> dict[str, Any]:
        (message,) = self.messages()
        return message["error"]


def send(
    gateway: RuntimeGateway,
    method: str,
    body: Any = None,
    *,
    token: str | None = None,
    session: str | None = None,
    headers: dict[str, str | bytes] | None = None,
    path: str = "/v1/mcp",
) -> Exchange:
    all_headers: dict[str, str | bytes] = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if session is not None:
        all_headers["Mcp-Session-Id"] = session
    all_headers.update(headers or {})
    before = gateway.upstream_requests()
    content = None if body is None else encode(body)
    with httpx.Client(timeout=30, trust_env=False) as client:
        response = client.request(method, gateway.base_url + path, content=content, headers=all_headers)
    return Exchange(method, path, response, gateway.upstream_requests() - before)


def code_and_data(exchange: Exchange) -> tuple[int, dict[str, Any]]:
    error = exchange.error()
    return error["code"], error.get("data", {})


# --- forwarded -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_an_allowed_call_is_the_tool_servers_event_stream(gateway, contract, token, session, path) -> None:
    exchange = send(gateway, "POST", tool_call("echo", {"message": "contract"}), token=token, session=session,
                    path=path).conforms(contract)
    assert exchange.response.status_code == 200 and exchange.reached_upstream == 1
    assert exchange.response.headers["content-type"].startswith("text/event-stream")
    assert exchange.messages()[0]["result"]["content"][0]["text"] == "Echo: contract"


def test_initialize_answers_with_the_session_header(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", initialize_request(), token=token).conforms(contract)
    assert exchange.response.status_code == 200 and exchange.response.headers["mcp-session-id"]


def test_tools_list_is_filtered_to_the_tokens_tools(gateway, contract, session) -> None:
    narrow = gateway.token("contract-lister", tools=["echo"])
    exchange = send(gateway, "POST", request("tools/list"), token=narrow, session=session).conforms(contract)
    assert [t["name"] for t in exchange.messages()[0]["result"]["tools"]] == ["echo"]


def test_a_batch_gets_the_gateways_refusals_first_in_the_stream(gateway, contract, token, session) -> None:
    body = [tool_call("echo", {"message": "a"}, id=1), tool_call(DENIED_TOOL, id=2), notification("notifications/x")]
    exchange = send(gateway, "POST", body, token=token, session=session).conforms(contract)
    by_id = {m["id"]: m for m in exchange.messages()}
    assert by_id[2]["error"]["data"]["rule"] == "no_env" and "result" in by_id[1]
    assert exchange.messages()[0]["id"] == 2


def test_ending_a_session_is_the_tool_servers_answer(gateway, contract, token) -> None:
    exchange = send(gateway, "DELETE", token=token, session=gateway.open_session(token)).conforms(contract)
    assert exchange.response.status_code == 200 and exchange.reached_upstream == 1


@pytest.mark.parametrize(
    ("label", "headers", "status"),
    [
        ("no valid session", {"Mcp-Session-Id": "no-such-session"}, 400),
        ("Accept without text/event-stream", {"Accept": "application/json"}, 406),
        ("a body that is not application/json", {"Content-Type": "text/plain"}, 415),
    ],
)
def test_the_tool_servers_refusal_passes_unchanged(gateway, contract, token, session, label, headers, status) -> None:
    exchange = send(gateway, "POST", request("ping"), token=token, session=session, headers=headers)
    exchange.conforms(contract)
    assert exchange.response.status_code == status and exchange.reached_upstream == 1, label


def test_a_refused_whole_request_carries_the_gateways_errors_after_the_tool_servers(gateway, contract, token) -> None:
    body = [request("ping", id=1), tool_call(DENIED_TOOL, id=2)]
    exchange = send(gateway, "POST", body, token=token, session="no-such-session").conforms(contract)
    assert exchange.response.status_code == 400
    upstream, ours = exchange.messages()
    assert upstream["error"]["code"] == -32000 and ours["id"] == 2 and ours["error"]["code"] == -32012


def test_a_second_stream_for_one_session_is_the_tool_servers_409(gateway, contract, token) -> None:
    session = gateway.open_session(token)
    opened = threading.Event()
    release = threading.Event()

    def hold_stream() -> None:
        headers = {"Authorization": f"Bearer {token}", "Mcp-Session-Id": session, "Accept": "text/event-stream"}
        with httpx.Client(timeout=30, trust_env=False) as client:
            with client.stream("GET", gateway.base_url + "/v1/mcp", headers=headers) as stream:
                assert stream.status_code == 200
                opened.set()
                release.wait(30)

    holder = threading.Thread(target=hold_stream, daemon=True)
    holder.start()
    try:
        assert opened.wait(10), "the first stream did not open"
        exchange = send(gateway, "GET", token=token, session=session, headers={"Accept": "text/event-stream"})
        assert exchange.conforms(contract).response.status_code == 409
    finally:
        release.set()
        holder.join(10)


# --- refused by the gateway ----------------------------------------------------------------------


def assert_refused(exchange: Exchange, contract: Any, code: int, status: int = 200) -> dict[str, Any]:
    exchange.conforms(contract)
    assert exchange.reached_upstream == 0, "a refused request reached the tool server"
    assert exchange.response.status_code == status, exchange.response.text
    found, data = code_and_data(exchange)
    assert found == code, exchange.response.text
    return data


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700),
        (b"\xff\xfe", -32700),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, -32600),
        ([], -32600),
        (42, -32600),
        (request("tools/delete"), -32601),
        (request("tools/call", {"arguments": {}}), -32602),
        (request("tools/call", {"name": "echo", "arguments": {"$serde_json::private::Number": "1"}}), -32602),
    ],
    ids=["truncated-json", "not-utf8", "wrong-version", "empty-batch", "scalar", "unknown-method", "no-tool-name",
         "number-token-key"],
)
@pytest.mark.parametrize("path", PATHS)
def test_a_malformed_body_is_an_envelope_error(gateway, contract, token, path, body, code) -> None:
    data = assert_refused(send(gateway, "POST", body, token=token, path=path), contract, code)
    assert set(data) == {"reason"}


def test_a_body_over_one_mebibyte_is_refused_whole(gateway, contract, token) -> None:
    data = assert_refused(send(gateway, "POST", padded_tool_call(1024 * 1024 + 1), token=token), contract, -32600)
    assert "exceeds the limit" in data["reason"]


def metadata_url(gateway: RuntimeGateway, path: str) -> str:
    return f"{gateway.base_url}/.well-known/oauth-protected-resource{path}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body", [tool_call("echo", {"message": "x"}), initialize_request()])
def test_a_request_without_a_token_is_401_with_its_32010_and_the_metadata_url(gateway, contract, path, body) -> None:
    exchange = send(gateway, "POST", body, path=path)
    data = assert_refused(exchange, contract, -32010, status=401)
    assert data == {"check": "capability", "reason": "missing bearer token"}
    assert exchange.messages()[0]["id"] == body["id"]
    challenge = exchange.response.headers["www-authenticate"]
    assert challenge == f'Bearer resource_metadata="{metadata_url(gateway, path)}"'


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_the_metadata_is_read_with_get_only(gateway, method) -> None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        answer = client.request(method, metadata_url(gateway, "/v1/mcp"))
    assert (answer.status_code, answer.headers.get("allow")) == (405, "GET, HEAD"), answer.text


def test_a_revoked_token_is_401_invalid_token(gateway, contract) -> None:
    minted = gateway.mint("contract-revoked")
    gateway.control_plane.revoke(minted["jti"], "contract")
    gateway.sync("the revocation to reach every filter")
    exchange = send(gateway, "POST", tool_call("echo", {"message": "x"}), token=minted["token"])
    data = assert_refused(exchange, contract, -32010, status=401)
    assert "revoked" in data["reason"]
    assert exchange.response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", resource_metadata="{metadata_url(gateway, "/v1/mcp")}"'
    )


def test_a_token_of_another_tenant_than_requested_is_401(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", tool_call("echo", {"message": "x"}), token=token,
                    headers={"X-IntentGate-Tenant": TENANT + "-other"})
    assert "does not match" in assert_refused(exchange, contract, -32010, status=401)["reason"]


@pytest.mark.parametrize("audience", ["https://another-gateway.example.com/v1/mcp", "{base}/v1/tool-call"])
def test_a_token_for_another_resource_is_401(gateway, contract, session, audience) -> None:
    audience = audience.format(base=gateway.base_url)
    bound = gateway.token("contract-elsewhere", audience=audience)
    exchange = send(gateway, "POST", tool_call("echo", {"message": "x"}), token=bound, session=session)
    data = assert_refused(exchange, contract, -32010, status=401)
    assert data["reason"] == f"the token is for the resource {audience}, not for {gateway.base_url}/v1/mcp"
    assert exchange.response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.parametrize("audience", ["{base}/v1/mcp", "{base}"])
def test_a_token_for_this_resource_is_served(gateway, contract, session, audience) -> None:
    bound = gateway.token("contract-here", audience=audience.format(base=gateway.base_url))
    exchange = send(gateway, "POST", tool_call("echo", {"message": "bound"}), token=bound, session=session)
    exchange.conforms(contract)
    assert exchange.response.status_code == 200 and exchange.reached_upstream == 1
    assert exchange.messages()[0]["result"]["content"][0]["text"] == "Echo: bound"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {"Mcp-Method": "tools/list", "Mcp-Name": "echo"},
        {"Mcp-Method": "tools/call", "Mcp-Name": DENIED_TOOL},
        {"Mcp-Method": "tools/call"},
        {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?not base64?="},
    ],
)
def test_routing_headers_that_disagree_with_the_body_are_400_with_32020(gateway, contract, token, session, path,
                                                                      headers) -> None:
    body = tool_call("echo", {"message": "x"}, id=41)
    exchange = send(gateway, "POST", body, token=token, session=session, path=path, headers=headers)
    data = assert_refused(exchange, contract, -32020, status=400)
    assert exchange.messages()[0]["id"] == 41 and data["reason"], exchange.response.text


def test_routing_headers_that_repeat_the_body_are_served(gateway, contract, token, session) -> None:
    for name in ("echo", "=?base64?ZWNobw==?="):
        exchange = send(gateway, "POST", tool_call("echo", {"message": "routed"}), token=token, session=session,
                        headers={"Mcp-Method": "tools/call", "Mcp-Name": name}).conforms(contract)
        assert exchange.response.status_code == 200 and exchange.reached_upstream == 1, exchange.response.text
        assert exchange.messages()[0]["result"]["content"][0]["text"] == "Echo: routed"


def test_a_stateless_request_is_governed_like_any_other(gateway, contract) -> None:
    """No initialize and no session (MCP 2026-07-28's stateless requests): the four checks decide it all
    the same, and each decision is audited."""
    token = gateway.token("contract-stateless")
    denied = send(gateway, "POST", tool_call(DENIED_TOOL, id=51), token=token,
                  headers={"Mcp-Method": "tools/call", "Mcp-Name": DENIED_TOOL})
    assert assert_refused(denied, contract, -32012)["rule"] == "no_env"
    narrow = gateway.token("contract-stateless-narrow", tools=["echo"])
    outside = send(gateway, "POST", tool_call("get-sum", {"a": 1, "b": 2}, id=52), token=narrow)
    assert "not allowed by the token" in assert_refused(outside, contract, -32010)["reason"]
    allowed = send(gateway, "POST", tool_call("echo", {"message": "stateless"}, id=53), token=token,
                   headers={"Mcp-Method": "tools/call", "Mcp-Name": "echo"}).conforms(contract)
    # Forwarded: this tool server keeps sessions, so it answers the session-less call itself.
    assert allowed.reached_upstream == 1, allowed.response.text

    def decided() -> set[tuple[str, str, str]]:
        events = gateway.control_plane.audit(TENANT)
        found = {(e["agent_id"], e["tool"], e["decision"]) for e in events
                 if e["agent_id"] in ("contract-stateless", "contract-stateless-narrow") and e.get("tool")}
        return found if len(found) >= 3 else set()

    assert wait_for(decided, "the decisions' audit events") == {
        ("contract-stateless", DENIED_TOOL, "deny"), ("contract-stateless-narrow", "get-sum", "deny"),
        ("contract-stateless", "echo", "allow")}


def test_a_tool_the_token_does_not_allow_is_32010_in_band(gateway, contract) -> None:
    narrow = gateway.token("contract-narrow", tools=["echo"])
    exchange = send(gateway, "POST", tool_call("get-sum", {"a": 1, "b": 2}), token=narrow)
    assert "not allowed by the token" in assert_refused(exchange, contract, -32010)["reason"]
    assert "www-authenticate" not in exchange.response.headers


@pytest.mark.parametrize("path", ["", *PATHS])
def test_the_protected_resource_metadata_needs_no_token(gateway, contract, path) -> None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        response = client.get(metadata_url(gateway, path))
    contract["/.well-known/oauth-protected-resource" + path]["GET"].Case(method="GET").validate_response(
        response, checks=CONFORMANCE
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["resource"] == gateway.base_url + path
    assert document["authorization_servers"] == [gateway.control_plane.url]
    assert document["bearer_methods_supported"] == ["header"] and document["scopes_supported"] == ["tool:*"]


def test_protected_resource_metadata_of_a_path_not_served_is_404(gateway) -> None:
    before = gateway.upstream_requests()
    with httpx.Client(timeout=30, trust_env=False) as client:
        response = client.get(metadata_url(gateway, "/v1/admin"))
    assert response.status_code == 404 and gateway.upstream_requests() == before


def test_a_tool_outside_the_declared_intent_is_32011(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", tool_call("echo", {"message": "x"}), token=token,
                    headers={"X-Intent-Prompt": INVOICE_PROMPT})
    assert assert_refused(exchange, contract, -32011)["check"] == "intent"


def test_a_policy_denial_is_32012_with_its_rule(gateway, contract, token) -> None:
    data = assert_refused(send(gateway, "POST", tool_call(DENIED_TOOL), token=token), contract, -32012)
    assert data["rule"] == "no_env"


def test_a_spent_budget_is_32013_with_limit_and_used(gateway, contract, session) -> None:
    budget = gateway.token("contract-budget", max_calls=1)
    first = send(gateway, "POST", tool_call("echo", {"message": "1"}), token=budget, session=session)
    assert "result" in first.conforms(contract).messages()[0]
    data = assert_refused(send(gateway, "POST", tool_call("echo", {"message": "2"}), token=budget, session=session),
                          contract, -32013)
    assert (data["limit"], data["used"]) == (1, 1)


def test_an_escalation_in_asynchronous_mode_is_32019_with_the_approval_id(gateway, contract, token) -> None:
    data = assert_refused(send(gateway, "POST", tool_call(ESCALATED_TOOL), token=token), contract, -32019)
    assert data["status"] == "pending" and data["resume_header"] == "X-IntentGate-Approval-Id"
    assert any(p["id"] == data["pending_id"] for p in gateway.control_plane.pending(TENANT))


def test_an_approval_id_that_does_not_fit_is_32012(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", tool_call("echo", {"message": "x"}), token=token,
                    headers={"X-IntentGate-Approval-Id": "01NOSUCHAPPROVAL"})
    assert assert_refused(exchange, contract, -32012)["rule"] is None


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("path", PATHS)
def test_a_get_or_delete_without_a_valid_token_is_401(gateway, contract, gateway_foreign_token, method, path) -> None:
    for token in (None, gateway_foreign_token):
        exchange = send(gateway, method, token=token, session="any", path=path)
        assert_refused(exchange, contract, -32010, status=401)
        error = "" if token is None else 'error="invalid_token", '
        assert exchange.response.headers["www-authenticate"] == (
            f'Bearer {error}resource_metadata="{metadata_url(gateway, path)}"'
        )


def test_notifications_without_a_valid_token_are_401(gateway, contract) -> None:
    assert_refused(send(gateway, "POST", notification("notifications/initialized")), contract, -32010, status=401)


def test_refused_notifications_alone_are_202_without_a_body(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", [notification("foo/bar"), notification("tools/delete")], token=token)
    exchange.conforms(contract)
    assert (exchange.response.status_code, exchange.response.content, exchange.reached_upstream) == (202, b"", 0)


def test_a_header_that_is_not_utf8_is_400(gateway, contract, token) -> None:
    exchange = send(gateway, "POST", request("ping"), token=token, headers={"X-Intent-Prompt": b"caf\xe9"})
    assert "not valid UTF-8" in assert_refused(exchange, contract, -32600, status=400)["reason"]


@dataclass
class UnreachableUpstream:
    """A tool server address nobody listens on."""

    port: int


@pytest.fixture(scope="module")
def gateway_without_upstream(
    gateway: RuntimeGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeGateway]:
    """A second Envoy of the same system whose tool server cannot be reached."""
    upstream = UnreachableUpstream(free_port())
    with gateway_envoy(BUILD, upstream, gateway.control_plane, tmp_path_factory.mktemp("no-upstream")) as envoy:
        degraded = RuntimeGateway(gateway.control_plane, envoy)
        # Both Envoys' filters: the first one's alone would count as in sync before the second has any state.
        degraded.sync("the second Envoy's filters to sync", envoys=2)
        yield degraded


def test_an_unreachable_tool_server_is_32603_for_each_forwarded_request(
    gateway_without_upstream, contract, token
) -> None:
    body = [tool_call("echo", {"message": "x"}, id=1), request("ping", id=2), tool_call(DENIED_TOOL, id=3)]
    exchange = send(gateway_without_upstream, "POST", body, token=token).conforms(contract)
    assert exchange.response.status_code == 200, exchange.response.text
    by_id = {m["id"]: m["error"] for m in exchange.messages()}
    assert by_id[1]["code"] == by_id[2]["code"] == -32603 and by_id[1]["data"]["upstream_status"] == 503
    assert by_id[3]["code"] == -32012


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS", "HEAD"])
def test_an_unserved_method_is_405_with_allow(gateway, token, method) -> None:
    exchange = send(gateway, method, request("ping"), token=token)
    assert exchange.response.status_code == 405
    assert exchange.response.headers.get("allow") == "GET, POST, DELETE"
    if method != "HEAD":  # a HEAD answer has no body
        assert exchange.error()["code"] == -32600


def test_refused_requests_beside_forwarded_notifications_are_answered_200(gateway, contract, token, session) -> None:
    body = [notification("notifications/initialized"), tool_call(DENIED_TOOL, id=7)]
    exchange = send(gateway, "POST", body, token=token, session=session)
    assert exchange.response.status_code == 200
    assert exchange.response.headers.get("content-type", "").startswith("application/json")
    assert exchange.conforms(contract).messages()[0]["error"]["code"] == -32012
