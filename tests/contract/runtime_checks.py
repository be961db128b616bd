"""schemathesis checks for the runtime paths, where the built-in ones cannot judge: the gateway answers a
refused JSON-RPC message with an error under HTTP 200 (SPEC §3), so "refused" is read from the answer's
messages and from whether the request reached the tool server (Envoy's upstream request counter), not from
the HTTP status. They replace `negative_data_rejection` and `ignored_auth` for the Runtime operations.

Loaded through the run's configuration (`hooks = "contract.runtime_checks"`, with tests/ on PYTHONPATH).
Environment: INTENTGATE_CONTRACT_ENVOY_ADMIN (Envoy's admin URL), INTENTGATE_CONTRACT_FOREIGN_TOKEN (a
well-formed capability token signed by a key the gateway does not trust).
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
import schemathesis

from .runtime_messages import ENVELOPE_CODES, answers_in, invalid_messages, is_usable_id

RUNTIME_PATHS = ("/v1/mcp", "/v1/tool-call")
CAPABILITY_DENIED = -32010

_upstream_before: dict[int, int] = {}
_reached_upstream: dict[int, int] = {}


def _is_runtime(case: Any) -> bool:
    return case.operation.path in RUNTIME_PATHS


def upstream_requests() -> int:
    """Requests Envoy has sent to the tool server so far."""
    answer = requests.get(
        os.environ["INTENTGATE_CONTRACT_ENVOY_ADMIN"] + "/stats",
        params={"filter": "^cluster.upstream.upstream_rq_total$", "format": "json"},
        timeout=5,
    )
    answer.raise_for_status()
    stats = answer.json().get("stats", [])
    return sum(int(s["value"]) for s in stats if s.get("name") == "cluster.upstream.upstream_rq_total")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if _is_runtime(case):
        _upstream_before[id(case)] = upstream_requests()


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    before = _upstream_before.pop(id(case), None)
    if before is not None:
        _reached_upstream.clear()
        _reached_upstream[id(case)] = upstream_requests() - before


def _sent_body(response: Any) -> bytes | None:
    body = response.request.body
    if body is None:
        return None
    return body.encode() if isinstance(body, str) else bytes(body)


def _answers(response: Any) -> list[dict[str, Any]]:
    content_type = response.headers.get("content-type", [""])[0] if response.headers.get("content-type") else ""
    return answers_in(content_type, response.content)


@schemathesis.check
def invalid_messages_never_reach_the_tool_server(ctx: Any, response: Any, case: Any) -> bool | None:
    """What api/openapi.yaml calls an invalid request is refused by the gateway: a body that is not a
    message or a batch is answered as a whole and nothing reaches the tool server; in a batch, each invalid
    message with an id is answered with an envelope error (-32600, -32601, -32602) for that id, and when
    every message is invalid nothing is forwarded."""
    if not _is_runtime(case) or case.method.upper() != "POST":
        return None
    reached = _reached_upstream.get(id(case))
    body = _sent_body(response)
    if reached is None or body is None:
        return None
    whole, invalid = invalid_messages(body)
    if whole is not None or (invalid and len(invalid) == _message_count(body)):
        if reached:
            raise AssertionError(f"an invalid body ({whole or 'every message invalid'}) reached the tool server")
        return None
    answers = _answers(response)
    for message in invalid:
        if not is_usable_id(message):
            continue
        errors = [a for a in answers if a.get("id") == message["id"] and "error" in a]
        codes = {e["error"].get("code") for e in errors if isinstance(e.get("error"), dict)}
        if not codes & ENVELOPE_CODES:
            raise AssertionError(
                f"the invalid message with id {message['id']!r} got no envelope error from the gateway: {answers}"
            )
    return None


def _message_count(body: bytes) -> int:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 0
    return len(parsed) if isinstance(parsed, list) else 1


def _resend(response: Any, authorization: str | None) -> tuple[requests.Response, int]:
    """The same request with another Authorization (None: without one); how often it reached the tool server."""
    sent = response.request
    headers = {k: v for k, v in sent.headers.items() if k.lower() != "authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    before = upstream_requests()
    answer = requests.request(sent.method, sent.url, headers=headers, data=sent.body, timeout=30)
    return answer, upstream_requests() - before


@schemathesis.check
def capability_tokens_are_enforced(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request the gateway forwarded with the run's token, sent again without a token and with one signed
    by a key the gateway does not trust: nothing reaches the tool server, and the answer is 401 with -32010
    for each request (envelope errors for invalid messages of the batch), or 200 when the body was refused
    for its envelope alone."""
    if not _is_runtime(case) or not _reached_upstream.get(id(case)):
        return None
    foreign = "Bearer " + os.environ["INTENTGATE_CONTRACT_FOREIGN_TOKEN"]
    for label, authorization in (("without a token", None), ("with an untrusted token", foreign)):
        answer, reached = _resend(response, authorization)
        if reached:
            raise AssertionError(f"sent {label}, the request reached the tool server ({answer.status_code})")
        messages = answers_in(answer.headers.get("content-type", ""), answer.content)
        codes = {m.get("error", {}).get("code") for m in messages}
        if not messages or "result" in {k for m in messages for k in m}:
            raise AssertionError(f"sent {label}: answered {answer.text[:500]}")
        if answer.status_code == 401:
            if CAPABILITY_DENIED not in codes or not codes <= ENVELOPE_CODES | {CAPABILITY_DENIED}:
                raise AssertionError(f"sent {label}: 401 without a -32010 body: {answer.text[:500]}")
            if not answer.headers.get("www-authenticate", "").startswith("Bearer"):
                raise AssertionError(f"sent {label}: 401 without a Bearer challenge")
        elif answer.status_code == 200:
            if not codes <= ENVELOPE_CODES:
                raise AssertionError(f"sent {label}: 200 with more than envelope errors: {answer.text[:500]}")
        else:
            raise AssertionError(f"sent {label}: HTTP {answer.status_code}, expected 401 or 200: {answer.text[:500]}")
    return None
    foreign = "Bearer " + os.environ["INTENTGATE_CONTRACT_FOREIGN_TOKEN"]
    for label, authorization in (("without a token", None), ("with an untrusted token", foreign)):
        answer, reached = _resend(response, authorization)
        if reached:
            raise AssertionError(f"sent {label}, the request reached the tool server ({answer.status_code})")
        messages = answers_in(answer.headers.get("content-type", ""), answer.content)
        if answer.status_code == 401:
            if [m.get("error", {}).get("code") for m in messages] != [CAPABILITY_DENIED]:
                raise AssertionError(f"sent {label}: 401 without a -32010 body: {answer.text[:500]}")
        elif answer.status_code == 200:
            codes = {m.get("error", {}).get("code") for m in messages}
            if not messages or "result" in {k for m in messages for k in m} or not codes <= ENVELOPE_CODES | {
                CAPABILITY_DENIED
            }:
                raise AssertionError(f"sent {label}: answered {answer.text[:500]}")
        else:
            raise AssertionError(f"sent {label}: HTTP {answer.status_code}, expected 401 or 200: {answer.text[:500]}")
    return None
