"""The plain-Envoy baseline: the harness drives real peers through Envoy without any IntentGate filter.

These prove the harness itself (peers, Envoy bootstrap, routing, streaming, stats, logs, failure reports);
the filter's tests build on the same fixtures and must keep these passing.
"""

from __future__ import annotations

import http.client
import json
import socket
import uuid

import anyio
import pytest

from .envoy import MCP_PATHS, UPSTREAM_CLUSTER, Envoy, EnvoyConfig, json_objects_in, start_envoy, static_cluster
from .mcp_client import open_mcp_session, text_of
from .peers import EverythingServer, start_everything
from .processes import ProcessStartError, loopback_listening_ports
from .rpc import ACCEPT, RawMcp, padded_tool_call, request, tool_call

MIB = 1024 * 1024


# --- the peers listen on loopback only ------------------------------------------------------------


def test_upstream_listens_on_127_0_0_1_only(everything: EverythingServer) -> None:
    assert everything.listening_addresses() == [("127.0.0.1", everything.port)]


def test_envoy_listener_and_admin_listen_on_127_0_0_1_only(plain_envoy: Envoy) -> None:
    addresses = set(loopback_listening_ports(plain_envoy.pid))
    assert {address for address, _ in addresses} == {"127.0.0.1"}, addresses
    assert ("127.0.0.1", plain_envoy.port) in addresses
    assert plain_envoy.admin_url.startswith("http://127.0.0.1:")


# --- the real MCP client through Envoy -----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", MCP_PATHS)
async def test_mcp_client_initializes_lists_tools_and_calls_echo_through_envoy(plain_envoy: Envoy, path: str) -> None:
    before = plain_envoy.upstream_stat("upstream_rq_total")

    async with open_mcp_session(plain_envoy.url(path), token="not-checked-yet", prompt="say hello") as mcp:
        assert mcp.session.server_info is not None
        assert mcp.session.server_info.name == "mcp-servers/everything"
        assert mcp.session_id, "server-everything assigns a session id at initialize"
        names = await mcp.list_tool_names()
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= set(names)
        result = await mcp.call_tool("echo", {"message": "hello through envoy"})
        assert not result.is_error
        assert text_of(result) == "Echo: hello through envoy"
        posts = mcp.posts()

    assert [e.status for e in posts if e.status >= 300] == [], posts
    # initialize, notifications/initialized, tools/list, tools/call all reached the upstream.
    assert len(posts) >= 4
    assert plain_envoy.upstream_stat("upstream_rq_total") - before >= len(posts)
    entries = plain_envoy.wait_for_access_log(
        lambda e: e["path"] == path and e["method"] == "POST" and e["mcp_session_id"] == mcp.session_id,
        count=len(posts) - 1,  # all but initialize carry the session id
    )
    assert {(e["upstream_cluster"], e["upstream_path"]) for e in entries} == {(UPSTREAM_CLUSTER, "/mcp")}


@pytest.mark.anyio
async def test_mcp_client_sends_token_and_prompt_on_post_get_and_delete(plain_envoy: Envoy) -> None:
    async with open_mcp_session(plain_envoy.mcp_url, token="tok-123", prompt="check the weather") as mcp:
        await mcp.call_tool("echo", {"message": "x"})
        # The transport opens the server-to-client GET stream in the background after initialize.
        with anyio.fail_after(5):
            while not any(e.method == "GET" for e in mcp.exchanges):
                await anyio.sleep(0.02)
    exchanges = mcp.exchanges  # the DELETE that ended the session is recorded too
    assert {"POST", "GET", "DELETE"} <= {e.method for e in exchanges}
    for exchange in exchanges:
        assert exchange.request_headers.get("authorization") == "Bearer tok-123", exchange
        assert exchange.request_headers.get("x-intent-prompt") == "check the weather", exchange
        assert exchange.status < 300, exchange
    stream = next(e for e in exchanges if e.method == "GET")
    assert stream.content_type.startswith("text/event-stream")


def test_event_stream_answer_is_streamed_through_envoy_not_buffered(plain_envoy: Envoy) -> None:
    with RawMcp(plain_envoy.mcp_url) as raw:
        session_id = raw.initialize()
        body = tool_call("trigger-long-running-operation", {"duration": 1.2, "steps": 4}, id=7, progress_token="p")
        events = list(raw.stream_post(body, session_id=session_id))
        raw.delete(session_id)

    progress = [t for t, m in events if m.get("method") == "notifications/progress"]
    final = [(t, m) for t, m in events if m.get("id") == 7]
    assert len(progress) == 4, events
    assert len(final) == 1 and "result" in final[0][1], events
    # Each step takes 0.3 s upstream: had Envoy buffered the stream, every event would arrive at once.
    assert final[0][0] - progress[0] >= 0.6, f"events arrived together: {[round(t, 3) for t, _ in events]}"


# --- raw JSON-RPC through Envoy ------------------------------------------------------------------


def test_raw_jsonrpc_posts_reach_the_upstream_and_are_counted_in_cluster_stats(plain_envoy: Envoy) -> None:
    total = plain_envoy.upstream_stat("upstream_rq_total")
    completed = plain_envoy.upstream_stat("upstream_rq_completed")

    with RawMcp(plain_envoy.tool_call_url, token="t") as raw:
        session_id = raw.initialize()  # 2 requests
        answer = raw.post(tool_call("get-sum", {"a": 2, "b": 40}, id=5), session_id=session_id)
        assert answer.status == 200, answer.describe()
        assert answer.content_type.startswith("text/event-stream")
        result = answer.message()
        assert result["id"] == 5
        assert "42" in result["result"]["content"][0]["text"]
        assert raw.delete(session_id).status == 200

    assert plain_envoy.upstream_stat("upstream_rq_total") - total == 4
    plain_envoy.wait_for_stat(
        f"cluster.{UPSTREAM_CLUSTER}.upstream_rq_completed", lambda v: v - completed == 4, what="4 more completed"
    )


def test_jsonrpc_batch_is_forwarded_and_each_call_answered(plain_envoy: Envoy) -> None:
    with RawMcp(plain_envoy.mcp_url) as raw:
        session_id = raw.initialize()
        answer = raw.post(
            [tool_call("echo", {"message": "one"}, id=1), tool_call("get-sum", {"a": 1, "b": 2}, id=2)],
            session_id=session_id,
        )
        raw.delete(session_id)
    assert answer.status == 200, answer.describe()
    by_id = answer.by_id()
    assert set(by_id) == {1, 2}, answer.describe()
    assert by_id[1]["result"]["content"][0]["text"] == "Echo: one"


def test_malformed_body_reaches_upstream_through_plain_envoy_and_gets_parse_error(plain_envoy: Envoy) -> None:
    before = plain_envoy.upstream_stat("upstream_rq_total")
    with RawMcp(plain_envoy.mcp_url) as raw:
        session_id = raw.initialize()
        answer = raw.post(b'{"jsonrpc":"2.0","id":1,"method":', session_id=session_id)
        raw.delete(session_id)
    assert answer.status == 400, answer.describe()
    assert answer.message()["error"]["code"] == -32700
    assert plain_envoy.upstream_stat("upstream_rq_total") - before == 4


def test_two_mib_body_passes_plain_envoy_without_413(plain_envoy: Envoy) -> None:
    body = padded_tool_call(2 * MIB, name="echo", id=9)
    with RawMcp(plain_envoy.mcp_url) as raw:
        session_id = raw.initialize()
        answer = raw.post(body, session_id=session_id)
        raw.delete(session_id)
    assert answer.status == 200, answer.describe(300)
    text = answer.message()["result"]["content"][0]["text"]
    assert text.startswith("Echo: xxx") and len(text) > 2 * MIB - 100


@pytest.mark.parametrize("token", ["t", None], ids=["with-token", "without-token"])
def test_session_get_stream_and_delete_pass_through_plain_envoy(plain_envoy: Envoy, token: str | None) -> None:
    # Plain Envoy checks nothing, so both pass; with the filter, the requests without a token get 401.
    # One session per case: server-everything allows one GET stream per session (409 Conflict otherwise),
    # and notices a closed stream only some time after the client hangs up.
    with RawMcp(plain_envoy.mcp_url, token="t") as raw:
        session_id = raw.initialize()
        no_auth = {"Authorization": None} if token is None else {}
        stream = raw.get_stream(session_id, headers=no_auth)
        assert stream.status == 200, stream.describe()
        assert stream.content_type.startswith("text/event-stream")
        deleted = raw.delete(session_id, headers=no_auth)
        assert deleted.status == 200, deleted.describe()
        gone = raw.call("tools/list", id=3, session_id=session_id)
        assert gone.status in (400, 404), gone.describe()


def test_get_without_a_session_is_refused_by_the_upstream(plain_envoy: Envoy) -> None:
    with RawMcp(plain_envoy.mcp_url) as raw:
        answer = raw.get_stream(None)
    assert answer.status == 400, answer.describe()
    assert answer.message()["error"]["code"] == -32000


def test_unrouted_paths_get_404_from_envoy_and_never_reach_the_upstream(plain_envoy: Envoy) -> None:
    before = plain_envoy.upstream_stat("upstream_rq_total")
    with RawMcp(plain_envoy.url("/mcp")) as raw:
        assert raw.post(request("tools/list")).status == 404
    with RawMcp(plain_envoy.url("/v1/mcp/extra")) as raw:
        assert raw.post(request("tools/list")).status == 404
    with RawMcp(plain_envoy.url("/v1/mcp%2F..%2Fx")) as raw:
        assert raw.post(request("tools/list")).status == 400  # escaped slashes are rejected outright
    assert plain_envoy.upstream_stat("upstream_rq_total") == before


@pytest.mark.parametrize("raw_path", ["/v1//mcp", "/v1/x/../mcp", "/v1/./mcp"])
def test_path_variants_are_normalized_and_routed_like_v1_mcp(plain_envoy: Envoy, raw_path: str) -> None:
    # http.client sends the path byte for byte (httpx would remove the dot segments itself).
    request_id = str(uuid.uuid4())  # Envoy keeps a client's x-request-id: it finds our access log entry
    connection = http.client.HTTPConnection(plain_envoy.host, plain_envoy.port, timeout=10)
    try:
        connection.request(
            "POST",
            raw_path,
            body=json.dumps(request("tools/list")),
            headers={"Content-Type": "application/json", "Accept": ACCEPT, "X-Request-Id": request_id},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    # Routed to the upstream, which refuses a request without a session (400), rather than Envoy's 404.
    assert response.status == 400, body
    assert json.loads(body)["error"]["code"] == -32000
    [entry] = plain_envoy.wait_for_access_log(lambda e: e["request_id"] == request_id)
    assert (entry["path"], entry["upstream_path"], entry["status"]) == ("/v1/mcp", "/mcp", 400)


# --- the harness itself --------------------------------------------------------------------------


def test_stat_lookup_of_a_misspelt_stat_fails_naming_the_close_matches(plain_envoy: Envoy) -> None:
    with pytest.raises(KeyError, match=r"upstream_rq_totl.*'cluster\.upstream\.upstream_rq_total'"):
        plain_envoy.stat(f"cluster.{UPSTREAM_CLUSTER}.upstream_rq_totl")


def test_extra_clusters_and_filters_land_in_the_bootstrap(make_config) -> None:
    marker = {"name": "envoy.filters.http.test_marker"}
    config: EnvoyConfig = make_config()
    config.http_filters.append(marker)
    config.extra_clusters.append(static_cluster("extractor", "127.0.0.1", 9, http2=True))
    bootstrap = config.bootstrap()
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.test_marker", "envoy.filters.http.router"]
    assert [c["name"] for c in bootstrap["static_resources"]["clusters"]] == [UPSTREAM_CLUSTER, "extractor"]


def test_json_objects_embedded_in_envoy_log_lines_are_extracted() -> None:
    log = (
        "[2026-11-28 17:27:42.348][14889][info][main] [source/server/server.cc:1098] starting main dispatch loop\n"
        "[2026-11-28 17:27:43.001][14890][info][wasm] [source/extensions/common/wasm/context.cc:1151] "
        'wasm log intentgate: {"event": "decision", "outcome": "deny", "data": {"code": -32010}}\n'
        "[2026-11-28 17:27:43.002][14890][warning][misc] a {broken line\n"
    )
    assert list(json_objects_in(log)) == [{"event": "decision", "outcome": "deny", "data": {"code": -32010}}]


def test_envoy_that_fails_to_start_raises_with_the_tail_of_its_log(make_config, tmp_path) -> None:
    config: EnvoyConfig = make_config()
    config.http_filters.append(
        {"name": "envoy.filters.http.does_not_exist", "typed_config": {"@type": "type.googleapis.com/nope.Nope"}}
    )
    with pytest.raises(ProcessStartError) as failure:
        start_envoy(config, tmp_path, timeout=30)
    message = str(failure.value)
    assert "exited" in message and "last lines of envoy.log" in message
    assert "nope.Nope" in message


def test_upstream_on_a_busy_port_raises_with_the_tail_of_its_log(everything: EverythingServer, tmp_path) -> None:
    with pytest.raises(ProcessStartError) as failure:
        start_everything(everything.port, log_path=tmp_path / "busy.log", timeout=30)
    assert "already in use" in str(failure.value)


def test_stopped_envoy_exits_cleanly_and_frees_its_port(envoy_factory) -> None:
    envoy = envoy_factory()
    port = envoy.port
    assert envoy.stop() == 0
    assert not envoy.is_running()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert "caught ENVOY_SIGTERM" in envoy.log_text()
    assert json.loads(envoy.config_path.read_text())["static_resources"]["listeners"][0]["name"] == "gateway"
