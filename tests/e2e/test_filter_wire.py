"""The filter at the wire's edges, where the HTTP codecs allow more than a plain JSON POST: HTTP/2 requests
and answers that end with trailers, header values that are not UTF-8, and an upstream that answers the
forwarded part of a batch with a bare 202. Each must be decided like any other, and none may take the VM
down."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy
from .gateway import DEMO_POLICY, Build, Issuer, plugin_config, tenant_config
from .http_peers import RecordingServer, serve
from .rpc import RawMcp, tool_call

TENANT = "acme-corp"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate()


def echo_result(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    answer = {"jsonrpc": "2.0", "id": json.loads(body)["id"], "result": {"content": [{"type": "text", "text": "ok"}]}}
    return 200, {"content-type": "application/json"}, json.dumps(answer).encode()


@dataclass
class Wire:
    envoy: Envoy
    upstream: RecordingServer
    token: str


@pytest.fixture
def wire(build: Build, issuer: Issuer, tmp_path: Path) -> Iterator[Wire]:
    """One worker, so a request that poisoned the VM would also fail the next one."""
    with serve(echo_result) as upstream:
        policy = plugin_config([issuer.public_key], {TENANT: tenant_config(DEMO_POLICY.read_text())})
        config = EnvoyConfig(upstream_port=upstream.port, http_filters=[build.filter(policy)])
        with start_envoy(config, tmp_path, concurrency=1) as envoy:
            yield Wire(envoy, upstream, issuer.token("wire-agent", TENANT, tools=["echo"]))


def h2_post(port: int, headers: list[tuple[str, str]], body: bytes, trailers: list[tuple[str, str]]) -> tuple[int, dict]:
    """One HTTP/2 (prior knowledge, cleartext) POST to /v1/mcp whose body ends with trailers, not END_STREAM."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":path", "/v1/mcp"), (":scheme", "http"), (":authority", "127.0.0.1")]
        # content-length too: the recording upstream (HTTP/1) reads no chunked body.
        length = [("content-type", "application/json"), ("content-length", str(len(body)))]
        conn.send_headers(stream, request + length + headers)
        conn.send_data(stream, body)
        conn.send_headers(stream, trailers, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, chunks = 0, []
        while True:
            data = sock.recv(65536)
            assert data, "Envoy closed the connection before the answer ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    chunks.append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError(f"stream reset: {event.error_code}")
                elif isinstance(event, h2.events.StreamEnded):
                    return status, json.loads(b"".join(chunks))
            sock.sendall(conn.data_to_send())


def test_http2_request_trailers_do_not_skip_the_checks(wire: Wire) -> None:
    body = json.dumps(tool_call("echo", {"message": "x"}, id=1)).encode()
    trailers = [("x-trailer", "1")]
    status, unauthenticated = h2_post(wire.envoy.port, [], body, trailers)
    assert unauthenticated["error"]["code"] == -32010, (status, unauthenticated)
    bearer = [("authorization", f"Bearer {wire.token}")]
    denied_body = json.dumps(tool_call("get-env", {}, id=2)).encode()
    status, denied = h2_post(wire.envoy.port, bearer, denied_body, trailers)
    assert denied["error"]["code"] == -32010, (status, denied)
    assert wire.upstream.requests == [], "a refused call ended by trailers reached the tool server"
    status, allowed = h2_post(wire.envoy.port, bearer, body, trailers)
    assert status == 200 and allowed["result"]["content"][0]["text"] == "ok", allowed
    assert len(wire.upstream.requests) == 1


def raw_post(port: int, header_lines: bytes, body: bytes) -> tuple[int, dict]:
    """An HTTP/1.1 POST written byte for byte, so header values can hold bytes no client library sends."""
    request = (
        b"POST /v1/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + header_lines
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload)


def test_a_header_value_that_is_not_utf8_is_refused_and_the_vm_keeps_serving(wire: Wire) -> None:
    body = json.dumps(tool_call("echo", {"message": "x"}, id=3)).encode()
    bearer = b"Authorization: Bearer " + wire.token.encode() + b"\r\n"
    status, refused = raw_post(wire.envoy.port, bearer + b"X-Note: caf\xe9\r\n", body)
    assert status == 400 and refused["error"]["code"] == -32600, refused
    assert "x-note" in refused["error"]["data"]["reason"] and "UTF-8" in refused["error"]["data"]["reason"], refused
    assert wire.upstream.requests == []
    # The same (only) worker still decides: a panic would have poisoned its VM.
    status, allowed = raw_post(wire.envoy.port, bearer, body)
    assert status == 200 and "result" in allowed, allowed


@pytest.mark.parametrize(("upstream_status", "client_status"), [(202, 200), (400, 400)])
def test_local_errors_are_answered_when_the_upstream_answers_the_rest_without_a_body(
    build: Build, issuer: Issuer, tmp_path: Path, upstream_status: int, client_status: int
) -> None:
    def bodyless(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return upstream_status, {}, b""

    batch = [{"jsonrpc": "2.0", "method": "notifications/initialized"}, tool_call("get-env", {}, id=7)]
    with serve(bodyless) as upstream:
        policy = plugin_config([issuer.public_key], {TENANT: tenant_config(DEMO_POLICY.read_text())})
        config = EnvoyConfig(upstream_port=upstream.port, http_filters=[build.filter(policy)])
        token = issuer.token("batch-agent", TENANT, tools=["echo"])
        with start_envoy(config, tmp_path) as envoy, RawMcp(envoy.mcp_url, token=token) as raw:
            answer = raw.post(batch)
    assert len(upstream.requests) == 1, "the notification was forwarded"
    # A 202 becomes the 200 that carries answers; an upstream error keeps its status.
    assert answer.status == client_status, answer.describe()
    assert isinstance(json.loads(answer.body), list), "a batch is answered with an array"
    refused = answer.message()
    assert refused["id"] == 7 and refused["error"]["code"] == -32010, refused


class TrailingUpstream(socketserver.ThreadingTCPServer):
    """A cleartext HTTP/2 tool server whose every answer ends with trailers: the full tool list."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TrailingHandler)
        self.port = self.server_address[1]

    def __enter__(self) -> TrailingUpstream:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _TrailingHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        self.request.sendall(conn.data_to_send())
        bodies: dict[int, bytes] = {}
        while data := self.request.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    request_id = json.loads(bodies.pop(event.stream_id, b"{}")).get("id")
                    tools = [{"name": "echo", "inputSchema": {}}, {"name": "get-env", "inputSchema": {}}]
                    answer = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}}).encode()
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json")])
                    conn.send_data(event.stream_id, answer)
                    conn.send_headers(event.stream_id, [("x-upstream-trailer", "1")], end_stream=True)
            self.request.sendall(conn.data_to_send())


def test_a_tools_list_answer_ended_by_trailers_is_still_filtered(build: Build, issuer: Issuer, tmp_path: Path) -> None:
    with TrailingUpstream() as upstream:
        policy = plugin_config([issuer.public_key], {TENANT: tenant_config(DEMO_POLICY.read_text())})
        config = EnvoyConfig(upstream_port=upstream.port, upstream_http2=True, http_filters=[build.filter(policy)])
        token = issuer.token("list-agent", TENANT, tools=["echo"])
        with start_envoy(config, tmp_path) as envoy, RawMcp(envoy.mcp_url, token=token) as raw:
            answer = raw.call("tools/list", id=5)
    assert answer.status == 200, answer.describe()
    assert [t["name"] for t in answer.message()["result"]["tools"]] == ["echo"], answer.describe()
