"""Deterministic content the fake providers answer with: echo text, token counts, JSON from a schema."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "PrefixCache",
    "count_tokens",
    "fragments",
    "iter_text_pieces",
    "sample_from_schema",
    "text_of",
    "tool_arguments",
    "truncate_words",
    "wants_tools",
]

TOOL_TRIGGER = "use tool"
"""The default answers call tools when the last user text contains this (case-insensitive)."""
ALL_TOOLS_TRIGGER = "use tools"
"""...and call every declared tool, in parallel, when it contains this (or "use all tools")."""


def text_of(content: Any) -> str:
    """The plain text of a message `content`: a string, or the ``text`` of each part of a list, space-joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        for key in ("text", "content", "output", "thinking"):
            if isinstance(content.get(key), str):
                return content[key]
        if key_content := content.get("content"):
            return text_of(key_content)
        return ""
    if isinstance(content, Sequence):
        return " ".join(t for t in (text_of(part) for part in content) if t)
    return str(content)


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def truncate_words(text: str, limit: int | None) -> tuple[str, bool]:
    """`text` cut to `limit` words; the flag says whether it was cut."""
    if limit is None or limit <= 0:
        return text, False
    words = text.split(" ")
    if len([w for w in words if w]) <= limit:
        return text, False
    kept: list[str] = []
    n = 0
    for w in words:
        if w:
            if n == limit:
                break
            n += 1
        kept.append(w)
    return " ".join(kept), True


def wants_tools(user_text: str) -> str | None:
    """``"all"`` or ``"one"`` when `user_text` asks for tool calls, else None."""
    lowered = user_text.lower()
    if ALL_TOOLS_TRIGGER in lowered or "use all tools" in lowered:
        return "all"
    if TOOL_TRIGGER in lowered:
        return "one"
    return None


def fragments(text: str, count: int = 4) -> list[str]:
    """`text` cut into about `count` consecutive pieces (for streamed tool arguments)."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


def sample_from_schema(schema: Any, *, name: str = "value", defs: Mapping[str, Any] | None = None) -> Any:
    """A deterministic value that validates against the JSON Schema `schema` (the subset tools and pydantic use)."""
    if not isinstance(schema, Mapping):
        return f"{name}-value"
    if defs is None:
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return sample_from_schema(defs.get(ref, {}), name=name, defs=defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if options:
            non_null = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return sample_from_schema((non_null or options)[0], name=name, defs=defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties", {})
        return {key: sample_from_schema(sub, name=key, defs=defs) for key, sub in props.items()}
    if kind == "array":
        item = sample_from_schema(schema.get("items", {}), name=name, defs=defs)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"{name}-value"


def tool_arguments(parameters: Any) -> str:
    """The JSON arguments a fake model passes to a tool with JSON Schema `parameters`."""
    return json.dumps(sample_from_schema(parameters or {"type": "object", "properties": {}}))


class PrefixCache:
    """Remembers prompt prefixes, so a repeated prefix reports cached tokens like a provider's prompt cache."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _key(items: Iterable[Any]) -> str:
        return json.dumps(list(items), sort_keys=True, default=str)

    def longest_seen(self, items: Sequence[Any]) -> int:
        """How many leading `items` form a prefix seen before; then remember every prefix of `items`."""
        with self._lock:
            best = 0
            for k in range(len(items), 0, -1):
                if self._key(items[:k]) in self._seen:
                    best = k
                    break
            for k in range(1, len(items) + 1):
                self._seen.add(self._key(items[:k]))
            return best

    def seen_before(self, key: Any) -> bool:
        """Whether `key` was seen before; remember it."""
        k = self._key([key])
        with self._lock:
            seen = k in self._seen
            self._seen.add(k)
            return seen


def iter_text_pieces(text: str, size: int = 2) -> Iterable[str]:
    """Split `text` into pieces of about `size` words, keeping the spaces, for streamed deltas."""
    words = text.split(" ")
    for i in range(0, len(words), size):
        chunk = " ".join(words[i : i + size])
        yield chunk if i == 0 else " " + chunk
