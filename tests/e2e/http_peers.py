"""Small HTTP servers the tests run in-process: the external intent extractor contract, and a recording
upstream that shows exactly what the gateway forwarded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class RecordingServer:
    """A loopback HTTP server answering with ``handler`` and recording every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.path, headers, body))
                status, out_headers, out = outer.handler(self.path, headers, body)
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = _serve  # noqa: N815
            do_GET = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serve(handler: Handler) -> Iterator[RecordingServer]:
    with RecordingServer(handler) as server:
        yield server


class Extractor:
    """The external extractor contract: POST /v1/extract {prompt, agent_id} -> {intent: {...}}.

    ``mode`` switches its behaviour: "ok", "fail" (503), "slow" (answers after ``delay``), "garbage".
    Prompts containing "money" forbid transfer-like tools; anything else allows only echo.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 2.0

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != "/v1/extract":
            return 404, {}, b""
        if self.mode == "fail":
            return 503, {"content-type": "text/plain"}, b"model overloaded"
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "garbage":
            return 200, {"content-type": "application/json"}, b'{"summary": "no intent wrapper"}'
        request = json.loads(body)
        forbid = ["echo"] if "quiet" in request["prompt"] else []
        intent = {
            "summary": f"extracted for {request['agent_id']}",
            "allowed_tools": ["echo", "get-sum"],
            "forbidden_tools": forbid,
            "confidence": 0.9,
        }
        return 200, {"content-type": "application/json"}, json.dumps({"intent": intent}).encode()
