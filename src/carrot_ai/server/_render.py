"""A trace tree as terminal text (``carrot-ai demo`` and ``carrot-ai tail``)."""

from __future__ import annotations

import json
import re
from typing import Any

# C0 and C1 controls and DEL: a record's text must not move the cursor, retitle or clear the user's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def render_tree(node: dict[str, Any], *, details: bool = True, width: int = 110) -> str:
    """Render a tree node of ``GET /v1/traces/{id}`` (a record with ``children``) as indented lines."""
    lines: list[str] = []
    _render(node, "", "", details, width, lines)
    return "\n".join(lines)


def summary_line(record: dict[str, Any]) -> str:
    """One record in one line: name, kind, status, latency, model, tokens, cost."""
    metadata = record.get("metadata") or {}
    ok = record.get("status") == "success"
    parts = [str(record.get("name")), f"[{metadata.get('type', '?')}]", "ok" if ok else "ERROR"]
    latency = metadata.get("latency_ms")
    if isinstance(latency, int | float):
        parts.append(f"{latency:.1f} ms")
    if metadata.get("model"):
        parts.append(str(metadata["model"]))
    if "input_tokens" in metadata or "output_tokens" in metadata:
        parts.append(f"{metadata.get('input_tokens', 0)} in / {metadata.get('output_tokens', 0)} out tokens")
    cost = metadata.get("cost_usd")
    if isinstance(cost, int | float):
        parts.append(f"${cost:.6f}")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", "  ".join(parts))


def _render(node: dict[str, Any], first: str, rest: str, details: bool, width: int, lines: list[str]) -> None:
    lines.append(first + summary_line(node))
    children = node.get("children") or []
    if details:
        bar = "│  " if children else "   "
        output = node.get("output") or {}
        for label, value in (("input", node.get("input")), ("output", _output_value(output))):
            lines.append(_clip(f"{rest}{bar}{label + ':':<8}{_compact(value)}", width))
    for index, child in enumerate(children):
        last = index == len(children) - 1
        _render(child, rest + ("└─ " if last else "├─ "), rest + ("   " if last else "│  "), details, width, lines)


def _output_value(output: dict[str, Any]) -> Any:
    # Show what a person reads: the message text, the error, or a function's plain result.
    message = output.get("message")
    if isinstance(message, dict) and "content" in message:
        return message["content"]
    if "error" in output:
        return f"{output.get('error_type', 'Error')}: {output['error']}"
    if set(output) == {"result"}:
        return output["result"]
    return output


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _clip(line: str, width: int) -> str:
    line = line.replace("\n", " ")
    return line if len(line) <= width else line[: width - 1] + "…"
