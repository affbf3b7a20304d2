"""Secrets known by their name: a ``password`` argument, an ``Authorization`` header, an ``openai_api_key`` field.

``@trace`` replaces the value of an argument so named with ``"[REDACTED]"``, and the value under a dict key so
named at any depth of its captured input and output (:func:`mask_secret_keys`); so do manual tool events and user
metadata (``context(metadata=...)``, ``@trace(metadata=...)``). LLM request parameters are not walked: their
messages are content, and their headers are never captured.

The rule is a name rule (:func:`is_secret_name`), lower-cased with ``-`` and a camelCase hump read as ``_``
(``accessToken`` is ``access_token``): a name that is, or ends in ``_`` followed by, one of ``password``,
``passwd``, ``passphrase``, ``pwd``, ``secret``, ``token``, ``api_key`` / ``apikey``, ``authorization``, ``auth``,
``cookie(s)``, ``credential(s)``, ``private_key``, ``access_key`` (``aws_secret_access_key``) / ``access_key_id``,
``secret_key``, ``signing_key``, ``encryption_key``, ``account_key``, ``master_key``, ``subscription_key``; and the
header names ``set-cookie`` and ``x-api-key`` / ``proxy-authorization``, which it already covers. Keys are looked
up in a bounded memo, so a dict key seen before costs one dict lookup, not a regex.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:password|passwd|passphrase|pwd|secret|token|api_?key|apikey|authorization|auth|cookies?|credentials?"
    r"|private_key|access_key(?:_id)?|secret_key|signing_key|encryption_key|account_key|master_key|subscription_key)$"
)
# Lower-case substrings at least one of which every secret name contains (``str.lower`` applied to the whole JSON
# text lower-cases its keys the same way): JSON text without any of them names no secret.
_HINTS = ("pass", "pwd", "secret", "token", "api", "auth", "cookie", "credential", "private", 'key"', "keyid", "key_id")
_MEMO_SIZE = 4_096
_memo: dict[str, bool] = {}


_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_secret_name(name: str) -> bool:
    """Whether an argument or key called ``name`` holds a secret by its name alone (camelCase read as snake_case:
    ``accessToken``, ``clientSecret``, ``openaiApiKey``)."""
    return bool(_SECRET_NAME.search(_CAMEL_HUMP.sub("_", name).lower().replace("-", "_")))


def is_secret_key(key: object) -> bool:
    """:func:`is_secret_name` for a dict key (a non-string key names no secret), memoized."""
    found = _memo.get(key) if type(key) is str else None
    if found is not None:
        return found
    if not isinstance(key, str):
        return False
    found = is_secret_name(key)
    if len(_memo) < _MEMO_SIZE:  # bounded: keys of user data (ids, say) are unbounded; past the limit, compute
        _memo[key] = found
    return found


def may_name_secret(text: str) -> bool:
    """Whether JSON ``text`` may hold a key that names a secret (False: it surely holds none)."""
    lowered = text.lower()
    return (
        "pass" in lowered
        or "secret" in lowered
        or "token" in lowered
        or "api" in lowered
        or "auth" in lowered
        or "cookie" in lowered
        or "credential" in lowered
        or "private" in lowered
        or 'key"' in lowered  # (a JSON key ending in "key": access_key, secretKey, ...)
        or "pwd" in lowered
        or "keyid" in lowered
        or "key_id" in lowered
    )


def mask_secret_keys(data: Any) -> Any:
    """Return JSON data with the value under every secret-named dict key, at any depth, replaced by ``"[REDACTED]"``.

    ``data`` is never changed: a container holding a masked value is copied, the others are returned as they are.
    Dicts, lists and tuples (and their subclasses) are walked; anything else is returned as is.
    """
    if isinstance(data, dict):
        memo = _memo
        out: dict[Any, Any] | None = None
        for key, value in data.items():
            secret = memo.get(key)
            if secret is None:
                secret = is_secret_key(key)
            if secret:
                new: Any = REDACTED
            elif isinstance(value, _CONTAINERS):
                new = mask_secret_keys(value)
            else:
                continue
            if new is not value:
                if out is None:
                    out = dict(data)
                out[key] = new
        return data if out is None else out
    if isinstance(data, list | tuple):
        items: list[Any] | None = None
        for index, value in enumerate(data):
            if isinstance(value, _CONTAINERS):
                new = mask_secret_keys(value)
                if new is not value:
                    if items is None:
                        items = list(data)
                    items[index] = new
        return data if items is None else items
    return data


_CONTAINERS = (dict, list, tuple)
