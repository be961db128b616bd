"""MCP sessions through the gateway with the real Python ``mcp`` client (PyPI ``mcp`` 2.3.0).

::

    async with open_mcp_session(envoy.mcp_url, token=token, prompt="summarise my inbox") as mcp:
        tools = await mcp.list_tool_names()
        result = await mcp.call_tool("echo", {"message": "hi"})

Notes on mcp 2.3.0 that matter here:
- Its HTTP stack is ``httpx2`` (a fork of httpx), not ``httpx``; headers for every request of the session
  (POST, the GET stream and the closing DELETE) are set on the ``httpx2.AsyncClient`` we pass in.
- ``mcp.Client`` defaults to ``mode="auto"``, which first probes ``server/discover`` (a 2026-07-28 method)
  and falls back to ``initialize``. Against a gateway that would send an extra, non-MCP-2025 method
  through the filter on every connect, so this helper drives ``ClientSession`` directly and performs the
  classic ``initialize`` handshake (protocol 2025-11-25, which server-everything negotiates down to what it
  supports).
- A JSON-RPC error answer (any HTTP status with an ``application/json`` JSON-RPC error body) surfaces as
  ``mcp.shared.exceptions.MCPError`` with ``.code``, ``.message`` and ``.data``. A non-JSON 4xx/5xx becomes
  an MCPError with a stand-in code (-32603, or -32601 for a 404 before the session exists).
- After ``initialize`` the transport opens a background GET (server-to-client SSE stream); on exit it
  sends DELETE to end the session (``terminate_on_close``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

__all__ = ["HttpExchange", "MCPError", "McpSession", "auth_headers", "open_mcp_session", "text_of"]


def auth_headers(
    token: str | None = None, prompt: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``Authorization: Bearer <token>`` and ``X-Intent-Prompt`` (each only when given), plus ``extra``."""
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if prompt is not None:
        headers["X-Intent-Prompt"] = prompt
    headers.update(extra or {})
    return headers


@dataclass(frozen=True)
class HttpExchange:
    """One HTTP request the client made (method, url, headers) and the status/headers it got back."""

    method: str
    url: str
    status: int
    content_type: str
    headers: dict[str, str]
    request_headers: dict[str, str]


@dataclass
class McpSession:
    """An MCP client session over Streamable HTTP. ``exchanges`` records every HTTP request it made."""

    session: ClientSession
    exchanges: list[HttpExchange] = field(default_factory=list)

    @property
    def session_id(self) -> str | None:
        """The ``Mcp-Session-Id`` the server assigned at initialize (None before)."""
        for exchange in self.exchanges:
            if "mcp-session-id" in exchange.headers:
                return exchange.headers["mcp-session-id"]
        return None

    def posts(self) -> list[HttpExchange]:
        return [e for e in self.exchanges if e.method == "POST"]

    async def initialize(self) -> types.InitializeResult:
        """The ``initialize`` request and ``notifications/initialized``. Idempotent."""
        return await self.session.initialize()

    async def ping(self) -> types.EmptyResult:
        return await self.session.send_ping()

    async def list_tools(self) -> types.ListToolsResult:
        return await self.session.list_tools()

    async def list_tool_names(self) -> list[str]:
        """Names of every tool, following pagination."""
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await self.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            names += [tool.name for tool in page.tools]
            cursor = page.next_cursor
            if not cursor:
                return names

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        """``tools/call``. A JSON-RPC error answer raises MCPError; a tool-level failure is ``result.is_error``."""
        return await self.session.call_tool(name, arguments)


def text_of(result: types.CallToolResult) -> str:
    """The concatenated text content of a tool result."""
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@asynccontextmanager
async def open_mcp_session(
    url: str,
    *,
    token: str | None = None,
    prompt: str | None = None,
    headers: Mapping[str, str] | None = None,
    initialize: bool = True,
    timeout: float = 15.0,
    terminate_on_close: bool = True,
    auth: httpx2.Auth | None = None,
) -> AsyncIterator[McpSession]:
    """Open a session with the real MCP client against ``url`` (e.g. ``envoy.mcp_url``).

    ``token`` and ``prompt`` become ``Authorization: Bearer`` and ``X-Intent-Prompt`` on every request of the
    session; ``headers`` adds or overrides others. With ``initialize=False`` the caller sends ``initialize``
    itself (to assert on its failure, say). ``timeout`` bounds each request's wait for its answer and each
    HTTP connect/write; a request that gets no answer in time raises MCPError (code -32001 "timed out").
    ``auth`` is an ``httpx2.Auth`` for every request, e.g. one of the SDK's OAuth providers.
    """
    exchanges: list[HttpExchange] = []

    async def record(response: httpx2.Response) -> None:
        exchanges.append(
            HttpExchange(
                method=response.request.method,
                url=str(response.request.url),
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                headers={k.lower(): v for k, v in response.headers.items()},
                request_headers={k.lower(): v for k, v in response.request.headers.items()},
            )
        )

    http_client = httpx2.AsyncClient(
        headers=auth_headers(token, prompt, headers),
        # Reads stay open for the server-to-client GET stream; per-request answers are bounded by the
        # session's read timeout instead.
        timeout=httpx2.Timeout(timeout, read=300.0),
        event_hooks={"response": [record]},
        trust_env=False,
        auth=auth,
    )
    async with http_client:
        async with streamable_http_client(url, http_client=http_client, terminate_on_close=terminate_on_close) as (
            read_stream,
            write_stream,
        ):
            async with ClientSession(read_stream, write_stream, read_timeout_seconds=timeout) as session:
                mcp = McpSession(session=session, exchanges=exchanges)
                if initialize:
                    await mcp.initialize()
                yield mcp
