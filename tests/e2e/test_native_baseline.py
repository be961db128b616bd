"""The empty native module (filter/native-baseline) in a real Envoy 1.40: it loads through
``ENVOY_DYNAMIC_MODULES_SEARCH_PATH`` with the ABI version Envoy expects, a real MCP client's session passes
through it, and it holds each request's headers until the body is complete (its last data frame or its
trailers), then forwards the request whole, as IntentGate's filter does."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy, validate_config
from .mcp_client import open_mcp_session, text_of
from .native import BASELINE_MODULE, NATIVE_DIR, NATIVE_ENV, baseline_filter, require_module
from .peers import EverythingServer


@pytest.fixture(scope="module")
def baseline(everything: EverythingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    require_module(NATIVE_DIR, BASELINE_MODULE)
    config = EnvoyConfig(upstream_port=everything.port, http_filters=[baseline_filter()])
    with start_envoy(config, tmp_path_factory.mktemp("native-baseline"), env=NATIVE_ENV) as envoy:
        yield envoy


def test_envoy_loads_the_module_with_the_abi_version_it_expects(baseline: Envoy) -> None:
    log = baseline.log_text()
    assert "Dynamic module ABI version v0.2.0 matched." in log
    assert "deprecated" not in log


@pytest.mark.anyio
async def test_an_mcp_session_passes_through_the_module(baseline: Envoy) -> None:
    before = baseline.upstream_stat("upstream_rq_total")
    async with open_mcp_session(baseline.mcp_url, token="not-checked", prompt="say hello") as mcp:
        assert mcp.session.server_info is not None and mcp.session.server_info.name == "mcp-servers/everything"
        assert {"echo", "get-sum"} <= set(await mcp.list_tool_names())
        result = await mcp.call_tool("echo", {"message": "through the native module"})
        assert not result.is_error and text_of(result) == "Echo: through the native module"
        posts = mcp.posts()
    assert [e.status for e in posts if e.status >= 300] == [], posts
    assert len(posts) >= 4  # initialize, notifications/initialized, tools/list, tools/call
    assert baseline.upstream_stat("upstream_rq_total") - before >= len(posts)


def test_a_configuration_the_module_does_not_take_is_refused(tmp_path: Path) -> None:
    accepted = validate_config(EnvoyConfig(upstream_port=9, http_filters=[baseline_filter()]), tmp_path / "ok", env=NATIVE_ENV)
    assert accepted.returncode == 0, accepted.stderr + accepted.stdout
    refused = validate_config(
        EnvoyConfig(upstream_port=9, http_filters=[baseline_filter('{"hold": false}')]), tmp_path / "bad", env=NATIVE_ENV
    )
    assert refused.returncode != 0
    assert "the baseline module takes no configuration" in refused.stderr + refused.stdout


# --- holding: an HTTP/2 upstream that records when each request arrives ------------------------------


@dataclass
class Arrival:
    at: float
    headers: dict[str, str]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)


class H2Recorder(socketserver.ThreadingTCPServer):
    """A cleartext HTTP/2 upstream noting when each request's headers arrive and what came with them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        self.port = self.server_address[1]
        self.arrivals: list[Arrival] = []

    def __enter__(self) -> H2Recorder:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _RecorderHandler(socketserver.BaseRequestHandler):
    server: H2Recorder

    def handle(self) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        self.request.sendall(conn.data_to_send())
        streams: dict[int, Arrival] = {}
        while data := self.request.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = Arrival(time.monotonic(), dict(event.headers))
                    self.server.arrivals.append(streams[event.stream_id])
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id].body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    streams[event.stream_id].trailers = list(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "2")])
                    conn.send_data(event.stream_id, b"ok", end_stream=True)
            self.request.sendall(conn.data_to_send())


def post_in_two_steps(port: int, chunks: list[bytes], trailers: list[tuple[str, str]] | None, pause: float) -> tuple[int, float]:
    """An HTTP/2 POST to /v1/mcp: the headers and every chunk but the end, a pause, then the end (the last chunk,
    or the trailers). Returns the answer's status and when the end was sent."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":path", "/v1/mcp"), (":scheme", "http"), (":authority", "127.0.0.1")]
        conn.send_headers(stream, request + [("content-type", "application/json")])
        held = chunks if trailers else chunks[:-1]
        for chunk in held:
            conn.send_data(stream, chunk)
        sock.sendall(conn.data_to_send())
        time.sleep(pause)
        ended_at = time.monotonic()
        if trailers:
            conn.send_headers(stream, trailers, end_stream=True)
        else:
            conn.send_data(stream, chunks[-1], end_stream=True)
        sock.sendall(conn.data_to_send())
        status = 0
        while True:
            data = sock.recv(65536)
            assert data, "Envoy closed the connection before answering"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError(f"stream reset: {event.error_code}")
                elif isinstance(event, h2.events.StreamEnded):
                    return status, ended_at
            sock.sendall(conn.data_to_send())


@pytest.mark.parametrize("module", [True, False], ids=["baseline", "plain-envoy"])
@pytest.mark.parametrize("ending", ["trailers", "last-data-frame"])
def test_the_request_is_held_until_its_body_is_complete_then_forwarded_whole(
    tmp_path: Path, module: bool, ending: str
) -> None:
    chunks = [bytes([65 + i]) * 16000 for i in range(3)]
    trailers = [("x-trailer", "1")] if ending == "trailers" else None
    with H2Recorder() as upstream:
        config = EnvoyConfig(
            upstream_port=upstream.port, upstream_http2=True, http_filters=[baseline_filter()] if module else []
        )
        with start_envoy(config, tmp_path, env=NATIVE_ENV, concurrency=1) as envoy:
            status, ended_at = post_in_two_steps(envoy.port, chunks, trailers, pause=0.5)
    assert status == 200
    [arrival] = upstream.arrivals
    assert arrival.body == b"".join(chunks)
    assert arrival.trailers == (trailers or [])
    if module:
        assert arrival.at >= ended_at, "the module let the headers go before the body was complete"
    else:
        # Plain Envoy streams: this proves the pause is long enough to tell holding from streaming.
        assert arrival.at < ended_at
