"""JSON-RPC as api/openapi.yaml describes it, for the runtime contract tests: which messages of a sent body
the contract calls invalid, and the JSON-RPC messages of an answer (a JSON body or an event stream)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from e2e.rpc import messages_in

SPEC = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"
ENVELOPE_CODES = frozenset({-32700, -32600, -32601, -32602})
MAX_BATCH = 100


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema (the one 3.0 keyword the request schemas use)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _message_validator() -> jsonschema.Draft4Validator:
    components = _json_schema(yaml.safe_load(SPEC.read_text())["components"])
    root = {"components": components, "allOf": [{"$ref": "#/components/schemas/JsonRpcClientMessage"}]}
    return jsonschema.Draft4Validator(root)


def invalid_messages(body: bytes) -> tuple[str | None, list[Any]]:
    """Why the body as a whole is invalid (None when it is a message or a batch), and its invalid messages."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON", []
    if isinstance(parsed, list):
        if not 1 <= len(parsed) <= MAX_BATCH:
            return f"a batch of {len(parsed)} messages", []
        messages = parsed
    elif isinstance(parsed, dict):
        messages = [parsed]
    else:
        return "neither a message nor a batch", []
    validator = _message_validator()
    return None, [m for m in messages if not validator.is_valid(m)]


def is_usable_id(message: Any) -> bool:
    """Whether a message carries an id its error can be matched by (a string or a number)."""
    return (
        isinstance(message, dict)
        and isinstance(message.get("id"), (str, int, float))
        and not isinstance(message.get("id"), bool)
    )


def answers_in(content_type: str, content: bytes) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer (a JSON body, or the events of a stream); none when unreadable."""
    try:
        return [m for m in messages_in(content_type, content) if isinstance(m, dict)]
    except (ValueError, UnicodeDecodeError):
        return []
