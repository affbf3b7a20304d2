"""The content policy: whether prompt and response text is captured, and how it is cleaned first.

Applied in the core, before a value reaches a span attribute, so every path (wrappers, instrumentors, ``@trace``,
manual capture) obeys it the same way. This module is the single switch; the contract for a capture path is:

1. Decide once, when the call starts: ``capture = capture_for_call(kwargs)`` for a provider SDK call (it also
   removes a per-call ``X-Carrot-Trace: metadata-only`` header), else ``capture = capture_enabled()``. Keep the
   answer for the whole call: a stream consumed after the call returned obeys the decision taken when it began.
2. When ``capture`` is false, put no prompt, response, tool argument or function input/output text in any span
   attribute (metadata, token counts and model names only) and set ``carrot.content_captured = False``.
3. When it is true, pass every value through :func:`prepare` / :func:`prepare_json` (JSON-safe, media replaced by
   a placeholder, long strings truncated, then redacted when redaction is on) and single strings such as error
   messages through :func:`prepare_text`.

Until ``init()`` installs one, the policy comes from the environment (``CARROT_TRACE_CONTENT``,
``CARROT_TRACE_REDACT``, ``CARROT_MAX_STRING_LENGTH``, ``CARROT_MAX_MEDIA_BYTES``), so zero-code setups obey it too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._media import MIN_BARE_BASE64, MediaStripper
from carrot_ai._core._redact import FAILED_MASK
from carrot_ai._core._secret_keys import mask_secret_keys, may_name_secret
from carrot_ai._core._serialize import (
    DEFAULT_MAX_STRING,
    RequestBody,
    cut_string,
    dumps,
    fast_encode,
    to_jsonable,
    truncate_string,
)

if TYPE_CHECKING:
    from carrot_ai._config import Settings

TRACE_HEADER = "x-carrot-trace"
# Longer than any match of the built-in redaction patterns (an email reaches 64 + 640 characters around its "@"):
# a string over the limit is masked up to twice this far past the limit, and cut at least this far before the end
# of what was masked (where a value may have been split).
_CUT_MARGIN = 1024
METADATA_ONLY = "metadata-only"
UNAVAILABLE = "<content unavailable>"


class ContentPolicy:
    """Capture on or off, the string limit, the media limit, and an optional string redactor.

    ``redactor`` is applied to every captured string after media were replaced and long strings truncated, and
    ``key_redactor`` (default: ``redactor``) to dict keys; ``max_media_bytes`` is the largest base64 payload kept
    inline (0: none; negative: keep all).
    """

    __slots__ = ("capture", "max_string", "redactor", "key_redactor", "max_media_bytes", "_media")

    def __init__(
        self,
        capture: bool = True,
        max_string: int = DEFAULT_MAX_STRING,
        redactor: Callable[[str], Any] | None = None,
        max_media_bytes: int = 0,
        key_redactor: Callable[[str], Any] | None = None,
    ) -> None:
        self.capture = capture
        self.max_string = max_string
        self.redactor = redactor
        self.key_redactor = key_redactor or redactor
        self.max_media_bytes = max_media_bytes
        self._media = MediaStripper(max_media_bytes) if max_media_bytes >= 0 else None

    def clean(self, data: Any, parent_key: str | None = None) -> Any:
        """Replace media, truncate and redact inside JSON-safe ``data`` (its containers are changed in place)."""
        kind = type(data)
        if kind is str:
            return self.clean_string(data)
        if kind is dict:
            media = self._media
            for key, value in data.items():
                value_kind = type(value)
                if value_kind is str:
                    replacement = media.payload(data, key, value, parent_key) if media is not None else None
                    data[key] = replacement if replacement is not None else self.clean_string(value)
                elif value_kind is dict or value_kind is list:
                    data[key] = self.clean(value, key)
            if self.key_redactor is not None:
                data = self._redact_keys(data)
            return data
        if kind is list:
            for index, value in enumerate(data):
                if type(value) is str or type(value) is dict or type(value) is list:
                    data[index] = self.clean(value, parent_key)
            return data
        return data

    def clean_string(self, value: str) -> str:
        """Media placeholder, truncation and redaction for one string."""
        if self._media is not None and (value.startswith("data:") or len(value) >= 1024):
            replacement = self._media.string(value)
            if replacement is not None:
                return replacement
        redactor = self.redactor
        if len(value) > self.max_string:
            if redactor is None:
                return truncate_string(value, self.max_string)
            return self._redact_and_cut(value, redactor)
        if redactor is not None:
            result = redactor(value)
            value = result if isinstance(result, str) else FAILED_MASK
        return value

    def _redact_and_cut(self, value: str, redactor: Callable[[str], Any]) -> str:
        """Mask a string over the limit, then cut it: cut first, a value the cut splits would escape its pattern."""
        limit = self.max_string
        head = redactor(value[: limit + 2 * _CUT_MARGIN])
        if not isinstance(head, str):
            return FAILED_MASK
        if len(value) > limit + 2 * _CUT_MARGIN:
            # The end of ``head`` may hold the first part of a value this read split, unmasked: keep clear of it.
            limit = max(min(limit, len(head) - _CUT_MARGIN), 0)
        return head if len(head) <= limit else cut_string(head, limit, len(value))

    def _redact_keys(self, data: dict[str, Any]) -> dict[str, Any]:
        redactor = self.key_redactor
        assert redactor is not None
        keys = [redactor(key) for key in data]
        if all(new == old for new, old in zip(keys, data, strict=True)):
            return data
        out: dict[str, Any] = {}
        for new, value in zip(keys, data.values(), strict=True):
            key = new if isinstance(new, str) else FAILED_MASK
            if key in out:  # two keys masked alike: keep both values
                key = _unique_key(out, key)
            out[key] = value
        return out


def _unique_key(taken: dict[str, Any], key: str) -> str:
    number = 2
    while f"{key} ({number})" in taken:
        number += 1
    return f"{key} ({number})"


def policy_from_settings(settings: Settings) -> ContentPolicy:
    """Build the policy ``init()`` installs; ``redact_fn`` turns redaction on by itself."""
    redactor = key_redactor = None
    if settings.redact or settings.redact_fn is not None:
        from carrot_ai._core._redact import make_string_redactor

        redactor = make_string_redactor(settings.redact_fn)
        # Keys (parameter names, JSON field names) get the built-in patterns only: a failing redact_fn must not
        # collapse every key of a dict into one.
        key_redactor = make_string_redactor(None) if settings.redact_fn is not None else redactor
    media_limit = getattr(settings, "max_media_bytes", 0)
    return ContentPolicy(settings.capture_content, settings.max_string_length, redactor, media_limit, key_redactor)


_policy: ContentPolicy | None = None


def set_policy(policy: ContentPolicy) -> None:
    """Install the policy ``init()`` resolved."""
    global _policy
    _policy = policy


def policy() -> ContentPolicy:
    """Return the policy in force (read from the environment until ``init()`` installs one)."""
    current = _policy
    if current is None:
        current = _policy_from_environment()
        set_policy(current)
    return current


def _policy_from_environment() -> ContentPolicy:
    from carrot_ai._config import resolve_settings

    try:
        return policy_from_settings(resolve_settings())
    except Exception as exc:
        report_internal_error("content policy from environment", exc)
        return ContentPolicy()


_current_scope: Callable[[], Any] | None = None


def capture_enabled() -> bool:
    """Whether content may be captured here: the global switch and any ``context(metadata_only=True)`` block."""
    global _current_scope
    if not (_policy or policy()).capture:
        return False
    if _current_scope is None:  # imported late: carrot_ai._context imports this module
        from carrot_ai._context import current_scope

        _current_scope = current_scope
    return not _current_scope().metadata_only


def redaction_enabled() -> bool:
    """Whether captured strings are masked."""
    return policy().redactor is not None


def pop_trace_header(kwargs: MutableMapping[str, Any]) -> bool:
    """Remove a per-call ``X-Carrot-Trace: metadata-only`` header from an SDK call's keyword arguments.

    Contract (for the provider wrappers; ``kwargs`` is the wrapper's own dict of the call's keyword arguments):

    * Looks at ``kwargs["extra_headers"]`` (the OpenAI, Anthropic and LiteLLM per-call header argument). The header
      name matches case-insensitively and the value ``metadata-only`` case- and whitespace-insensitively.
    * When found, ``kwargs["extra_headers"]`` is replaced by a *new* dict without that header (the caller's dict is
      never changed); if nothing else is left, the ``extra_headers`` key is removed. Returns True: record this call
      as metadata only.
    * Any other value (``X-Carrot-Trace: true`` is the Carrot inference API's own header) is left in place and sent
      on; returns False. So does a missing, ``None`` or non-mapping ``extra_headers``.
    * Never raises.
    """
    try:
        headers = kwargs.get("extra_headers")
        if not headers or not hasattr(headers, "items"):
            return False
        found = False
        kept: dict[Any, Any] = {}
        for name, value in headers.items():
            if (
                isinstance(name, str)
                and name.lower() == TRACE_HEADER
                and isinstance(value, str)
                and value.strip().lower() == METADATA_ONLY
            ):
                found = True
            else:
                kept[name] = value
        if not found:
            return False
        if kept:
            kwargs["extra_headers"] = kept
        else:
            del kwargs["extra_headers"]
        return True
    except Exception as exc:
        report_internal_error("pop_trace_header", exc)
        return False


def capture_for_call(kwargs: MutableMapping[str, Any]) -> bool:
    """Decide, at the start of one SDK call, whether its content is captured (see the module's contract).

    Removes a per-call ``X-Carrot-Trace: metadata-only`` header (:func:`pop_trace_header`) in any case, so the
    header never reaches the provider, then combines it with :func:`capture_enabled`.
    """
    metadata_only = pop_trace_header(kwargs)
    return not metadata_only and capture_enabled()


def prepare(value: Any, mask_secrets: bool = False, request_body: RequestBody | None = None) -> Any:
    """Return ``value`` as JSON-safe data: media replaced, long strings truncated, redacted; never raises.

    ``mask_secrets``: the value under a dict key named like a secret, at any depth, becomes ``"[REDACTED]"``
    (``@trace`` inputs and outputs, manual tool events; never LLM request parameters, which are content). Never
    returns a value unmasked when redaction is on: if cleaning fails, the whole value is replaced. ``request_body``:
    ``value`` is a model call's request parameters, written as that provider's SDK sends them (see
    :func:`~._serialize.to_jsonable`).
    """
    current = policy()
    try:
        # No truncation here: a media payload must be measured whole before it is replaced.
        data = to_jsonable(value, max_string=sys.maxsize, mask_secrets=mask_secrets, request_body=request_body)
        return current.clean(data)
    except Exception as exc:
        report_internal_error("content.prepare", exc)
        return FAILED_MASK if current.redactor is not None else UNAVAILABLE


# Substrings that may announce media in encoded JSON; data without any of them has no media to replace.
_MEDIA_HINTS = ("data:", "base64", "b64_json", "blob", "audio", "inline")


def prepare_json(value: Any, mask_secrets: bool = False, request_body: RequestBody | None = None) -> str:
    """:func:`prepare`, then encode as compact JSON. Plain JSON data (what ``request_body`` changes nothing in: it
    matters only for objects, which the fast path below refuses) is encoded as it is."""
    current = _policy or policy()
    if current.redactor is None:
        # Fast path for small plain JSON data (a chat message, a function's arguments): when it encodes as is, fits
        # the string limit (so no string needs cutting), is shorter than the shortest bare-base64 payload and names
        # no media, cleaning would not change it. Anything else (objects, nan, cycles, media, long text) takes the
        # full path. Secret keys are looked for only in text that may name one (most has none of the hints).
        try:
            text: str = fast_encode(value)
            if len(text) < MIN_BARE_BASE64 and len(text) <= current.max_string and not _has_media_hint(text):
                if mask_secrets and may_name_secret(text):
                    masked = mask_secret_keys(value)
                    if masked is not value:
                        text = fast_encode(masked)
                return text
        except Exception:  # (a dict subclass's items() may raise anything: the full path converts it safely)
            pass
    return dumps(prepare(value, mask_secrets, request_body))


def _has_media_hint(text: str) -> bool:
    # The hints of _MEDIA_HINTS, spelled out: six substring searches at C speed, no generator.
    return (
        "data:" in text
        or "base64" in text
        or "b64_json" in text
        or "blob" in text
        or "audio" in text
        or "inline" in text
    )


def prepare_text(text: str) -> str:
    """Truncate and redact one string (an error message, a user id); never raises."""
    current = policy()
    try:
        return current.clean_string(text if type(text) is str else str(text))
    except Exception as exc:
        report_internal_error("content.prepare_text", exc)
        return FAILED_MASK if current.redactor is not None else UNAVAILABLE


def strip_media(value: Any, max_media_bytes: int | None = None) -> Any:
    """Return JSON-safe ``value`` with base64 media payloads replaced by ``"<media: TYPE, N bytes>"``.

    ``max_media_bytes`` (default: the policy's) is the largest payload kept inline. :func:`prepare` already does
    this; use it directly for data that does not go through :func:`prepare`.
    """
    limit = policy().max_media_bytes if max_media_bytes is None else max_media_bytes
    stripper = ContentPolicy(True, sys.maxsize, None, limit)
    return stripper.clean(to_jsonable(value, max_string=sys.maxsize))
