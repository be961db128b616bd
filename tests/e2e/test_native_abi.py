"""The dynamic-module layer (filter/envoy-dm) inside a real Envoy 1.40, driven by its probe module
(filter/envoy-dm/examples/probe.rs): the request header ``x-probe`` picks what a stream does. Headers, bodies,
local answers, wake-ups from another thread, callouts, metrics and logging each reach Envoy and come back; a
panic in any hook fails its stream closed and Envoy keeps serving; the symbols the built modules export and
import are the ones this Envoy resolves."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .envoy import Envoy, EnvoyConfig, start_envoy, static_cluster, validate_config
from .http_peers import RecordingServer, serve
from .native import BASELINE_MODULE, NATIVE_DIR, PROBE_DIR, dynamic_module_filter, envoy_elf, require_module, wait_for_log

CALLOUT_CLUSTER = "recorder"


def recorder_answer(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Callouts get ``pong``; forwarded requests get back what the upstream saw."""
    if path in ("/stream", "/config"):
        return 200, {"content-type": "text/plain"}, b"pong"
    seen = {"path": path, "headers": headers, "body": body.decode(errors="replace")}
    return 200, {"content-type": "application/json"}, json.dumps(seen).encode()


@dataclass
class Probe:
    envoy: Envoy
    upstream: RecordingServer
    client: httpx.Client

    def post(self, action: str, body: bytes = b"hello", **headers: str) -> httpx.Response:
        return self.client.post(self.envoy.mcp_url, content=body, headers={"x-probe": action, **headers})

    def forwarded(self, action: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [r for r in self.upstream.requests if r[1].get("x-probe") == action]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    require_module(PROBE_DIR, "probe")
    with serve(recorder_answer) as upstream:
        config = EnvoyConfig(
            upstream_port=upstream.port,
            http_filters=[dynamic_module_filter("probe", {"cluster": CALLOUT_CLUSTER})],
            extra_clusters=[static_cluster(CALLOUT_CLUSTER, "127.0.0.1", upstream.port)],
        )
        env = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(PROBE_DIR)}
        with start_envoy(config, tmp_path_factory.mktemp("probe"), env=env) as envoy, httpx.Client(timeout=10) as client:
            yield Probe(envoy, upstream, client)


def assert_still_serving(probe: Probe) -> None:
    answer = probe.post("")
    assert answer.status_code == 200 and answer.headers["x-probe-response"] == "seen", answer.text


# --- loading ---------------------------------------------------------------------------------------


def test_the_module_loads_with_the_abi_version_this_envoy_expects(probe: Probe) -> None:
    log = probe.envoy.log_text()
    assert "Dynamic module ABI version v0.2.0 matched." in log
    assert "is deprecated" not in log


def _symbols(binary: Path, *flags: str) -> set[str]:
    out = subprocess.run(["nm", "-D", *flags, str(binary)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("module", [BASELINE_MODULE, "probe"])
def test_a_built_module_exports_only_hooks_this_envoy_looks_up_and_imports_only_callbacks_it_exports(
    module: str,
) -> None:
    path = require_module(PROBE_DIR if module == "probe" else NATIVE_DIR, module)
    envoy_binary = envoy_elf()
    hooks = {s for s in _symbols(path, "--defined-only") if s.startswith("envoy_dynamic_module_on_")}
    callbacks = {s for s in _symbols(path, "--undefined-only") if s.startswith("envoy_dynamic_module_callback_")}
    looked_up = set(re.findall(rb"envoy_dynamic_module_on_[a-z0-9_]+", envoy_binary.read_bytes()))
    assert "envoy_dynamic_module_on_http_filter_config_new" in hooks
    assert {h.encode() for h in hooks} <= looked_up, sorted(h for h in hooks if h.encode() not in looked_up)
    assert callbacks and callbacks <= _symbols(envoy_binary, "--defined-only")


# --- headers and local answers ---------------------------------------------------------------------


def test_the_request_headers_are_read_whole_and_one_by_one(probe: Probe) -> None:
    answer = probe.post("headers", **{"x-one": "1"})
    assert answer.status_code == 200 and answer.headers["x-probe-answer"] == "local"
    seen = answer.json()
    assert ["x-probe", "headers"] in seen["headers"] and [":method", "POST"] in seen["headers"]
    assert seen["x-one"] == "1"
    assert probe.forwarded("headers") == [], "a locally answered request reached the upstream"


def test_header_changes_reach_envoys_map_and_the_upstream(probe: Probe) -> None:
    shown = probe.post("mutate-show", **{"x-remove": "bye"}).json()
    assert shown == {"x-added": ["1", "2"], "x-remove gone": True}
    answer = probe.post("mutate", **{"x-remove": "bye"})
    assert answer.status_code == 200, answer.text
    [(_, headers, _)] = probe.forwarded("mutate")
    assert headers["x-set"] == "set" and "x-added" in headers and "x-remove" not in headers
    assert answer.headers["x-probe-response"] == "seen", "the response hook set a response header"


# --- bodies ----------------------------------------------------------------------------------------


def test_a_body_that_arrives_in_many_chunks_is_read_whole(probe: Probe) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: many chunks on the way in
    answer = probe.post("echo-body", body)
    assert answer.status_code == 200
    assert answer.content == body


def test_a_replaced_request_body_is_what_the_upstream_receives(probe: Probe) -> None:
    answer = probe.post("replace-body", b"quiet please")
    assert answer.status_code == 200, answer.text
    [(_, headers, body)] = probe.forwarded("replace-body")
    assert body == b"QUIET PLEASE" and headers["content-length"] == "12"


def test_a_replaced_response_body_is_what_the_client_receives(probe: Probe) -> None:
    answer = probe.post("replace-response")
    assert answer.status_code == 200
    assert re.fullmatch(r"replaced \d+ bytes", answer.text), answer.text
    assert int(answer.headers["content-length"]) == len(answer.content)


# --- wake-ups from other threads -------------------------------------------------------------------


def test_a_held_stream_is_resumed_on_its_worker_by_another_thread(probe: Probe) -> None:
    started = time.monotonic()
    answer = probe.post("wake")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started >= 0.1, "the stream was held until the other thread woke it"
    [(_, headers, body)] = probe.forwarded("wake")
    assert headers["x-woken-on-worker"] == "yes" and body == b"hello"


def test_a_held_response_is_resumed_on_its_worker_by_another_thread(probe: Probe) -> None:
    started = time.monotonic()
    answer = probe.post("wake-response")
    assert answer.status_code == 200 and answer.headers["x-woken-on-worker"] == "yes"
    assert time.monotonic() - started >= 0.1, "the response was held until the other thread woke it"
    assert answer.json()["body"] == "hello", "the held response body went out whole"


def test_a_wake_up_after_the_stream_ended_does_nothing(probe: Probe) -> None:
    with pytest.raises(httpx.TimeoutException):
        probe.client.post(probe.envoy.mcp_url, content=b"x", headers={"x-probe": "wake-late"}, timeout=0.3)
    wait_for_log(probe.envoy, "probe: wake-up after the stream ended was refused", timeout=5)
    assert probe.forwarded("wake-late") == []
    assert_still_serving(probe)


def test_the_configuration_is_woken_on_the_main_thread_and_makes_callouts_there(probe: Probe) -> None:
    probe.envoy.wait_for_stat("dynamicmodulescustom.probe_config_wakeups", lambda v: v == 1)
    probe.envoy.wait_for_stat("dynamicmodulescustom.probe_config_callouts", lambda v: v == 1)
    assert any(path == "/config" for path, _, _ in probe.upstream.requests)


# --- callouts --------------------------------------------------------------------------------------


def test_a_callout_answer_comes_back_to_its_stream(probe: Probe) -> None:
    answer = probe.post("callout")
    assert answer.json() == {"callout_status": 200, "callout_body": "pong"}
    assert ("/stream", "probe") in {(path, headers.get("host")) for path, headers, _ in probe.upstream.requests}


def test_a_callout_to_an_unknown_cluster_is_a_typed_error(probe: Probe) -> None:
    assert probe.post("callout-nowhere").json() == {"callout_error": "callout cluster not found"}


# --- metrics and logging ---------------------------------------------------------------------------


def test_counters_and_histograms_reach_envoys_stats(probe: Probe) -> None:
    before = probe.envoy.stat("dynamicmodulescustom.probe_requests")
    probe.post("", b"x" * 100)
    probe.envoy.wait_for_stat("dynamicmodulescustom.probe_requests", lambda v: v == before + 1)
    # Histograms are merged from the workers when Envoy flushes its stats (every 5 s).
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        body = probe.envoy.admin_get("/stats", format="json", filter="probe_body_bytes").json()
        quantiles = [q for s in body["stats"] if "histograms" in s for q in s["histograms"]["computed_quantiles"]]
        if quantiles and quantiles[0]["values"][-1]["cumulative"] is not None:
            assert quantiles[0]["values"][-1]["cumulative"] >= 100
            return
        time.sleep(0.5)
    raise AssertionError(f"no recorded probe_body_bytes after a flush: {body}")


def test_the_module_logs_to_envoys_dynamic_modules_logger(probe: Probe) -> None:
    probe.post("log-me")
    wait_for_log(probe.envoy, '[dynamic_modules] [:] probe: action "log-me"')


# --- the panic barrier -----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["panic-request-headers", "panic-request-body", "panic-scheduled"])
def test_a_panic_before_the_response_answers_a_local_error_and_envoy_keeps_serving(probe: Probe, action: str) -> None:
    answer = probe.post(action)
    assert answer.status_code == 500 and answer.text == "probe failed closed\n"
    assert probe.forwarded(action) == [], "a request whose hook panicked reached the upstream"
    wait_for_log(probe.envoy, "failed, the stream fails closed: probe: panic in")
    assert_still_serving(probe)


def test_a_panic_while_the_configuration_is_made_rejects_the_configuration(tmp_path: Path) -> None:
    config = EnvoyConfig(
        upstream_port=9, http_filters=[dynamic_module_filter("probe", {"cluster": CALLOUT_CLUSTER, "panic_in": "config"})]
    )
    checked = validate_config(config, tmp_path, env={"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(PROBE_DIR)})
    assert checked.returncode != 0
    assert "filter configuration failed: probe: panic while the configuration is made" in checked.stdout + checked.stderr


def test_a_panic_making_a_streams_filter_fails_the_stream_and_envoy_keeps_serving(tmp_path: Path) -> None:
    def never(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, b""

    with serve(never) as upstream:
        module = dynamic_module_filter("probe", {"cluster": CALLOUT_CLUSTER, "panic_in": "new_filter"})
        config = EnvoyConfig(upstream_port=upstream.port, http_filters=[module])
        env = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(PROBE_DIR)}
        with start_envoy(config, tmp_path, env=env, concurrency=1) as envoy, httpx.Client(timeout=10) as client:
            for _ in range(2):
                # Envoy itself closes a stream whose filter could not be made, with a bodiless 500.
                answer = client.post(envoy.mcp_url, content=b"{}")
                assert answer.status_code == 500, answer.text
            wait_for_log(envoy, "new_filter failed: probe: panic in new_filter")
            assert envoy.is_running() and envoy.admin_get("/ready").status_code == 200
    assert upstream.requests == [], "a stream without its filter reached the upstream"


def test_a_panic_in_the_response_resets_the_stream_and_envoy_keeps_serving(probe: Probe) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        probe.post("panic-response-headers")
    wait_for_log(probe.envoy, "on_response_headers failed, the stream fails closed")
    assert_still_serving(probe)
