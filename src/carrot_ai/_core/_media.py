"""Large media in captured content: base64 images, audio and files become a placeholder with their type and size.

Recognised, in JSON-safe data:

* any string that is a ``data:<media type>;base64,...`` URL (OpenAI ``image_url.url``, Responses ``input_image`` /
  ``input_file``, LiteLLM), and such a URL inside text of at least :data:`MIN_BARE_BASE64` characters (Markdown
  or HTML that inlines an image);
* the base64 payload of a dict that says it carries media: Anthropic ``{"type": "base64", "media_type", "data"}``
  sources, OpenAI ``{"input_audio": {"data", "format"}}`` and response ``audio.data``, Gemini
  ``inline_data {"mime_type", "data"}``, GenAI-convention ``{"type": "blob", "mime_type", "content"}`` parts,
  image API ``b64_json``;
* any other string of at least :data:`MIN_BARE_BASE64` characters that is entirely base64 and mixes upper case,
  lower case and digits like encoded binary does (the type is sniffed from the first bytes: PNG, JPEG, GIF, WebP,
  WAV, MP3, PDF, else ``application/octet-stream``).

The placeholder is the string ``"<media: image/png, 48213 bytes>"`` (the decoded size). Media of at most
``max_media_bytes`` decoded bytes are kept as they are (default 0: none).
"""

from __future__ import annotations

import re
from typing import Any

MIN_BARE_BASE64 = 1024
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[^;,]*)*;base64,", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}", re.ASCII)
# A data URL inside text (Markdown, HTML): its parameters end at the first character a URL in text cannot hold there.
_EMBEDDED_DATA_URL = re.compile(
    r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[^;,\s\"'()<>]*)*;base64,([A-Za-z0-9+/_-]+={0,2})", re.ASCII
)
_PAYLOAD_KEYS = ("data", "b64_json", "content", "file_data")
_HINT_TYPES = frozenset({"base64", "blob", "input_audio", "image", "audio", "input_image", "input_file"})
_HINT_PARENTS = frozenset({"input_audio", "inline_data", "inlineData", "audio", "source", "image", "file"})
_SNIFF = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "application/x-riff"),  # WAV or WebP: refined below
    ("SUQz", "audio/mpeg"),
    ("//uQ", "audio/mpeg"),
    ("//s", "audio/mpeg"),
    ("T2dnUw", "audio/ogg"),
    ("ZkxhQw", "audio/flac"),
    ("JVBERi0", "application/pdf"),
    ("AAAA", "video/mp4"),
)


def placeholder(media_type: str, size: int) -> str:
    """The string that stands in for a media payload."""
    return f"<media: {media_type}, {size} bytes>"


def base64_size(payload: str, start: int = 0) -> int:
    """Decoded byte size of the base64 text ``payload[start:]`` (without decoding or copying it)."""
    length = len(payload) - start
    if length > 76 and ("\n" in payload[start : start + 80] or "\n" in payload[-80:]):  # MIME line breaks
        length -= payload.count("\n", start) + payload.count("\r", start)
    padding = 2 if payload.endswith("==") else 1 if payload.endswith("=") else 0
    return max(length * 3 // 4 - padding, 0)


def sniff(payload: str) -> str:
    """Guess a media type from the first base64 characters."""
    for prefix, media_type in _SNIFF:
        if payload.startswith(prefix):
            if media_type == "application/x-riff":
                # "RIFF....WAVE" / "RIFF....WEBP": the format tag is bytes 8-11, base64 chars 11-16.
                tag = payload[11:16]
                return (
                    "audio/wav" if tag.startswith("XQVZF") else "image/webp" if tag.startswith("XRUJQ") else media_type
                )
            return media_type
    return "application/octet-stream"


def _is_base64(value: str) -> bool:
    return _BASE64.fullmatch(value) is not None


def _looks_binary(value: str) -> bool:
    """Whether a bare base64-alphabet string is encoded binary, not a long word, hex or a repeated letter.

    Encoded binary mixes upper case, lower case and digits within its first characters (the chance that 256
    characters of random base64 lack one of the three is below 1e-18).
    """
    head = value[:256]
    return (
        any(c.isupper() for c in head) and any(c.islower() for c in head) and any(c.isdigit() for c in head)
    ) and _is_base64(value)


class MediaStripper:
    """Replaces media payloads in JSON-safe data; keeps those of at most ``max_bytes`` decoded bytes."""

    __slots__ = ("max_bytes",)

    def __init__(self, max_bytes: int = 0) -> None:
        self.max_bytes = max_bytes

    def string(self, value: str) -> str | None:
        """The placeholder for a media string, or None if ``value`` is not media (or small enough to keep)."""
        if value.startswith("data:"):
            match = _DATA_URL.match(value, 0, 256)
            if match is not None:
                start = match.end()
                size = base64_size(value, start)
                if size <= self.max_bytes:
                    return None
                return placeholder(match.group(1) or sniff(value[start : start + 32]), size)
        if len(value) >= MIN_BARE_BASE64:
            if _looks_binary(value):
                size = base64_size(value)
                return None if size <= self.max_bytes else placeholder(sniff(value), size)
            if ";base64," in value:
                replaced = _EMBEDDED_DATA_URL.sub(self._embedded, value)
                return replaced if replaced != value else None
        return None

    def _embedded(self, match: re.Match[str]) -> str:
        payload = match.group(2)
        size = base64_size(payload)
        return match.group(0) if size <= self.max_bytes else placeholder(match.group(1) or sniff(payload[:32]), size)

    def payload(self, owner: dict[str, Any], key: str, value: str, parent_key: str | None) -> str | None:
        """The placeholder for ``owner[key]`` when ``owner`` says it carries media, else None."""
        if key not in _PAYLOAD_KEYS or len(value) < 16:
            return None
        if key == "content" and owner.get("type") != "blob":
            return None
        hinted = (
            owner.get("type") in _HINT_TYPES
            or "media_type" in owner
            or "mime_type" in owner
            or "mimeType" in owner
            or "format" in owner
            or key == "b64_json"
            or parent_key in _HINT_PARENTS
        )
        if not hinted:
            return None
        if value.startswith("data:"):
            return self.string(value)
        if not _is_base64(value.replace("\n", "").replace("\r", "")):
            return None
        size = base64_size(value)
        if size <= self.max_bytes:
            return None
        return placeholder(_media_type(owner, parent_key) or sniff(value), size)


def _media_type(owner: dict[str, Any], parent_key: str | None) -> str | None:
    for key in ("media_type", "mime_type", "mimeType"):
        value = owner.get(key)
        if isinstance(value, str) and value:
            return value
    fmt = owner.get("format")
    if isinstance(fmt, str) and fmt:
        return f"audio/{fmt}" if parent_key in ("input_audio", "audio") or owner.get("type") == "input_audio" else fmt
    return None
