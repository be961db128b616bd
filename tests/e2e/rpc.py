"""Hand-made JSON-RPC / Streamable HTTP traffic with httpx: for what the real MCP client will not send.

Batches, malformed bodies, oversized bodies, requests without a token, and the GET and DELETE of a session::

    with RawMcp(envoy.mcp_url, token=token) as raw:
        session_id = raw.initialize()
        answer = raw.post([tool_call("echo", {"message": "a"}, id=1), tool_call("get-sum", {"a": 1, "b": 2}, id=2)],
                          session_id=session_id)
        answer.by_id()            # {1: {...}, 2: {...}}
        raw.get_stream(session_id).status
        raw.delete(session_id, headers={"Authorization": None})   # None removes a default header

Answers to POSTs may be ``application/json`` or ``text/event-stream`` (server-everything answers requests
with a short SSE stream); ``RpcResponse.messages()`` reads both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .mcp_client import auth_headers

ACCEPT = "application/json, text/event-stream"
PROTOCOL_VERSION = "2025-06-18"
"""MCP protocol version raw sessions announce (server-everything supports 2024-11-05 .. 2025-11-25)."""

JsonRpcBody = Mapping[str, Any] | list[Any] | bytes | str


# --- bodies --------------------------------------------------------------------------------------


def request(method: str, params: Mapping[str, Any] | None = None, id: int | str = 1) -> dict[str, Any]:  # noqa: A002
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = dict(params)
    return body


def notification(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = dict(params)
    return body


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    id: int | str = 1,  # noqa: A002
    *,
    progress_token: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": dict(arguments or {})}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return request("tools/call", params, id)


def initialize_request(id: int | str = 0, protocol_version: str = PROTOCOL_VERSION) -> dict[str, Any]:  # noqa: A002
    return request(
        "initialize",
        {
            "protocolVersion": protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "intentgate-e2e-raw", "version": "0"},
        },
        id,
    )


def padded_tool_call(total_bytes: int, name: str = "echo", id: int | str = 1) -> bytes:  # noqa: A002
    """A well-formed ``tools/call`` body of exactly ``total_bytes`` bytes (``arguments.message`` is padding)."""
    empty = json.dumps(tool_call(name, {"message": ""}, id), separators=(",", ":")).encode()
    if total_bytes < len(empty):
        raise ValueError(f"a tools/call body needs at least {len(empty)} bytes")
    body = json.dumps(tool_call(name, {"message": "x" * (total_bytes - len(empty))}, id), separators=(",", ":"))
    encoded = body.encode()
    assert len(encoded) == total_bytes
    return encoded


def encode(body: JsonRpcBody) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


# --- answers -------------------------------------------------------------------------------------


def sse_events(text: str) -> list[dict[str, str]]:
    """Server-sent events in ``text``: dicts of their fields (``event``, ``id``, ...) and ``data``, whose
    lines are joined by newlines. Comment lines are skipped."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n") + [""]:
        if line == "":
            if fields or data:
                events.append({**fields, "data": "\n".join(data)})
                fields, data = {}, []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "data":
                data.append(value)
            else:
                fields[key] = value
    return events


def messages_in(content_type: str, body: bytes) -> list[Any]:
    """JSON-RPC messages in an HTTP body: a JSON object or batch array, or SSE ``data:`` events."""
    if not body.strip():
        return []
    if content_type.startswith("text/event-stream"):
        return [json.loads(e["data"]) for e in sse_events(body.decode()) if e.get("data")]
    parsed = json.loads(body)
    return parsed if isinstance(parsed, list) else [parsed]


@dataclass
class RpcResponse:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def session_id(self) -> str | None:
        return self.headers.get("mcp-session-id")

    def messages(self) -> list[Any]:
        """Every JSON-RPC message in the body (responses, and notifications an SSE answer carried)."""
        try:
            return messages_in(self.content_type, self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise AssertionError(f"not a JSON-RPC body ({e}): {self.describe()}") from e

    def responses(self) -> list[dict[str, Any]]:
        """Only the responses (objects with ``result`` or ``error``), in order."""
        return [m for m in self.messages() if isinstance(m, dict) and ("result" in m or "error" in m)]

    def message(self) -> dict[str, Any]:
        """The one response in the body; AssertionError, with the body, if there is not exactly one."""
        found = self.responses()
        if len(found) != 1:
            raise AssertionError(f"expected exactly one JSON-RPC response, got {len(found)}: {self.describe()}")
        return found[0]

    def by_id(self) -> dict[Any, dict[str, Any]]:
        """Responses keyed by id (for batches)."""
        return {m.get("id"): m for m in self.responses()}

    def describe(self, limit: int = 2000) -> str:
        text = self.body[:limit].decode("utf-8", errors="replace")
        more = f"... ({len(self.body)} bytes)" if len(self.body) > limit else ""
        return f"HTTP {self.status} {self.content_type!r}: {text}{more}"


# --- the client ----------------------------------------------------------------------------------


class RawMcp:
    """A synchronous HTTP client for one MCP endpoint with default headers (token, prompt, extras).

    Per-call ``headers`` override the defaults; a value of None removes a default header for that call.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        prompt: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        protocol_version: str = PROTOCOL_VERSION,
    ) -> None:
        self.url = url
        self.protocol_version = protocol_version
        self.default_headers = {"Accept": ACCEPT, **auth_headers(token, prompt, headers)}
        self.client = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RawMcp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, session_id: str | None, extra: Mapping[str, str | None] | None) -> dict[str, str]:
        headers: dict[str, str | None] = dict(self.default_headers)
        if session_id is not None:
            headers["Mcp-Session-Id"] = session_id
            headers["MCP-Protocol-Version"] = self.protocol_version
        for key, value in (extra or {}).items():
            for existing in [k for k in headers if k.lower() == key.lower()]:
                del headers[existing]
            headers[key] = value
        return {k: v for k, v in headers.items() if v is not None}

    def post(
        self,
        body: JsonRpcBody,
        *,
        session_id: str | None = None,
        headers: Mapping[str, str | None] | None = None,
        content_type: str = "application/json",
    ) -> RpcResponse:
        """POST ``body`` (a dict or list is JSON-encoded; bytes/str are sent as they are) and read the answer."""
        all_headers = {"Content-Type": content_type, **self._headers(session_id, headers)}
        r = self.client.post(self.url, content=encode(body), headers=all_headers)
        return RpcResponse(r.status_code, r.headers, r.content)

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        id: int | str = 1,  # noqa: A002
        session_id: str | None = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> RpcResponse:
        return self.post(request(method, params, id), session_id=session_id, headers=headers)

    def initialize(self, *, headers: Mapping[str, str | None] | None = None) -> str:
        """``initialize`` + ``notifications/initialized``; returns the session id. AssertionError if refused."""
        answer = self.post(initialize_request(protocol_version=self.protocol_version), headers=headers)
        if answer.status != 200 or answer.session_id is None or "result" not in answer.message():
            raise AssertionError(f"initialize was refused: {answer.describe()}")
        initialized = self.post(
            notification("notifications/initialized"), session_id=answer.session_id, headers=headers
        )
        if initialized.status not in (200, 202):
            raise AssertionError(f"notifications/initialized was refused: {initialized.describe()}")
        return answer.session_id

    def get_stream(
        self, session_id: str | None, *, headers: Mapping[str, str | None] | None = None, read_bytes: int = 0
    ) -> RpcResponse:
        """Open the session's server-to-client GET stream, read its headers (and up to ``read_bytes`` of body if
        it is an error answer), then close it. ``body`` is the whole body for a non-stream answer."""
        all_headers = self._headers(session_id, {"Accept": "text/event-stream", **(headers or {})})
        with self.client.stream("GET", self.url, headers=all_headers) as r:
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                body = b""
                if read_bytes:
                    for chunk in r.iter_raw():
                        body += chunk
                        if len(body) >= read_bytes:
                            break
            else:
                body = r.read()
            return RpcResponse(r.status_code, r.headers, body)

    def delete(self, session_id: str | None, *, headers: Mapping[str, str | None] | None = None) -> RpcResponse:
        """DELETE the session (ends it on the server)."""
        r = self.client.delete(self.url, headers=self._headers(session_id, headers))
        return RpcResponse(r.status_code, r.headers, r.content)

    def stream_post(
        self,
        body: JsonRpcBody,
        *,
        session_id: str | None = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> Iterator[tuple[float, Any]]:
        """POST and yield ``(seconds since the request was sent, message)`` as each SSE event arrives.

        Proves that an event-stream answer is streamed, not buffered, by whatever sits in between.
        """
        all_headers = {"Content-Type": "application/json", **self._headers(session_id, headers)}
        started = time.monotonic()
        with self.client.stream("POST", self.url, content=encode(body), headers=all_headers) as r:
            content_type = r.headers.get("content-type", "")
            if r.status_code != 200 or not content_type.startswith("text/event-stream"):
                r.read()
                raise AssertionError(
                    f"expected a 200 event stream: {RpcResponse(r.status_code, r.headers, r.content).describe()}"
                )
            pending = ""
            for chunk in r.iter_text():
                pending += chunk.replace("\r\n", "\n")
                while "\n\n" in pending:
                    raw_event, pending = pending.split("\n\n", 1)
                    for event in sse_events(raw_event):
                        if event.get("data"):
                            yield time.monotonic() - started, json.loads(event["data"])
