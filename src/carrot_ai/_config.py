"""Settings: arguments beat environment variables beat defaults, resolved once into a frozen dataclass."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.carrotlabs.ai"
MIN_FLUSH_INTERVAL = 0.05  # seconds: what a flush_interval of 0 (or less) means

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything ``init()`` decides, in one immutable object.

    ``request_timeout`` (seconds) bounds each step of one request to the ingest API: connecting, and every wait to
    send or to receive more of it. ``export_deadline`` (seconds) bounds a whole batch: all its attempts, the time
    spent inside each and the backoff between them; a batch not delivered by then is dropped (counted as
    ``network``), however slowly the server talks.
    """

    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    flush_interval: float = 5.0
    batch_size: int = 50
    capture_content: bool = True
    redact: bool = False
    redact_fn: Callable[[str], str] | None = None
    max_string_length: int = 100_000
    max_queue_bytes: int = 64 * 1024 * 1024
    max_batch_bytes: int = 5 * 1024 * 1024
    request_timeout: float = 10.0
    export_deadline: float = 30.0
    exit_timeout: float = 2.0
    ca_bundle: str | None = None
    propagate_to_threads: bool = True
    max_media_bytes: int = 0
    prices: Mapping[str, Mapping[str, float]] | None = None
    stats_log_interval: float = 60.0

    def __repr__(self) -> str:  # never show the key, nor credentials in the URL
        from carrot_ai.export._urls import redact_url

        shown = {"api_key": "***" if self.api_key else None, "base_url": redact_url(self.base_url)}
        fields = ", ".join(f"{f.name}={shown.get(f.name, getattr(self, f.name))!r}" for f in dataclasses.fields(self))
        return f"Settings({fields})"


def env_flag(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Read a boolean environment variable; an unrecognised value keeps the default (and is logged once)."""
    raw = (environ if environ is not None else os.environ).get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value and (name, raw) not in _warned_flags:
        # A privacy switch set to a value we do not read (CARROT_TRACE_CONTENT=metadata-only) must not pass unseen.
        _warned_flags.add((name, raw))
        logging.getLogger("carrot_ai").warning(
            "carrot_ai: %s=%r is not true or false; the default (%s) applies", name, raw, str(default).lower()
        )
    return default


_warned_flags: set[tuple[str, str]] = set()


def _env_float(name: str, default: float, environ: Mapping[str, str], *, above_zero: bool = False) -> float:
    """A number of the environment; one that is not a finite number >= 0 (> 0 with ``above_zero``) keeps the default,
    and is logged once: taken as given, ``CARROT_REQUEST_TIMEOUT=0`` lost every batch and ``CARROT_EXIT_TIMEOUT=inf``
    made exit wait for ever (the environment never raises: see :func:`_check_delivery_settings` for arguments)."""
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and (value > 0 if above_zero else value >= 0):
        return value
    if (name, raw) not in _warned_flags:
        _warned_flags.add((name, raw))
        logging.getLogger("carrot_ai").warning(
            "carrot_ai: %s=%r is not a number %s; the default (%s) applies",
            name,
            raw,
            "> 0" if above_zero else ">= 0",
            default,
        )
    return default


def _env_int(name: str, default: int, environ: Mapping[str, str]) -> int:
    value = _env_float(name, float(default), environ)
    return int(value) if value >= 1 else default


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """``OTEL_SDK_DISABLED=true`` turns carrot-ai into a no-op, as it does the OpenTelemetry SDK."""
    return env_flag("OTEL_SDK_DISABLED", False, environ)


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (a local ingest server needs no API key)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """Whether a host (a URL's, a ``Host`` header's name, a bind address) is this machine: ``localhost`` or a loopback
    address (127.0.0.0/8, ``::1``); not a name such as ``127.example.com``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Delivery settings given as arguments, and what each must be. (The environment's are read leniently: a value that
# is not a number >= 0 keeps the default.)
_SECONDS_ABOVE_ZERO = ("request_timeout", "export_deadline")
_SECONDS = ("flush_interval", "exit_timeout", "stats_log_interval")  # a flush_interval <= 0 means 50 ms
_WHOLE_NUMBERS = ("batch_size", "max_queue_bytes", "max_batch_bytes")


def _check_delivery_settings(values: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Reject delivery settings no exporter can run with: taken as given, a timeout or deadline of 0 lost every
    batch, a string failed in the worker (or broke shutdown and the exit hook), an infinite ``exit_timeout`` made
    exit wait for ever."""
    for name in (*_SECONDS_ABOVE_ZERO, *_SECONDS):
        if name not in given:
            continue
        value = values[name]
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if name in _SECONDS_ABOVE_ZERO and not (number and value > 0):
            raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
        if name == "exit_timeout" and not (number and value >= 0):
            raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if not number:
            raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    for name in _WHOLE_NUMBERS:
        if name not in given:
            continue
        value = values[name]
        if isinstance(value, float) and value.is_integer():  # (1e6)
            values[name] = value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")


def _check_privacy_settings(values: dict[str, Any]) -> None:
    """Reject privacy settings of the wrong type: taken as given, ``capture_content="false"`` (truthy) captures."""
    for name in ("capture_content", "redact"):
        value = values[name]
        if isinstance(value, bool):
            continue
        # What a config file or another variable gives: 0 / 1, or the words the environment variables take.
        word = value.strip().lower() if isinstance(value, str) else value if type(value) is int else None
        if word in _TRUE or word == 1:
            values[name] = True
        elif word in _FALSE or word == 0:
            values[name] = False
        else:
            raise ValueError(f"{name} must be True or False, not {value!r}")
    redact_fn = values.get("redact_fn")
    if redact_fn is not None and not callable(redact_fn):
        raise ValueError(f"redact_fn must be a function of one string, not {type(redact_fn).__name__}")
    limit = values["max_string_length"]
    if isinstance(limit, float) and limit.is_integer():  # (1e5)
        values["max_string_length"] = limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_string_length must be a whole number of characters >= 1, not {limit!r}")


def resolve_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from explicit arguments (``None`` means "not given"), the environment and defaults."""
    env = environ if environ is not None else os.environ
    given = {k: v for k, v in overrides.items() if v is not None}
    values: dict[str, Any] = {
        "api_key": env.get("CARROT_API_KEY") or None,
        "base_url": env.get("CARROT_BASE_URL") or DEFAULT_BASE_URL,
        "flush_interval": _env_float("CARROT_FLUSH_INTERVAL", 5.0, env),
        "batch_size": _env_int("CARROT_BATCH_SIZE", 50, env),
        "capture_content": env_flag("CARROT_TRACE_CONTENT", True, env),
        "redact": env_flag("CARROT_TRACE_REDACT", False, env),
        "max_string_length": _env_int("CARROT_MAX_STRING_LENGTH", 100_000, env),
        "max_queue_bytes": _env_int("CARROT_MAX_QUEUE_BYTES", 64 * 1024 * 1024, env),
        "max_batch_bytes": _env_int("CARROT_MAX_BATCH_BYTES", 5 * 1024 * 1024, env),
        "request_timeout": _env_float("CARROT_REQUEST_TIMEOUT", 10.0, env, above_zero=True),
        "export_deadline": _env_float("CARROT_EXPORT_DEADLINE", 30.0, env, above_zero=True),
        "exit_timeout": _env_float("CARROT_EXIT_TIMEOUT", 2.0, env),
        "ca_bundle": env.get("CARROT_CA_BUNDLE") or None,
        "propagate_to_threads": env_flag("CARROT_PROPAGATE_TO_THREADS", True, env),
        "max_media_bytes": _env_int("CARROT_MAX_MEDIA_BYTES", 0, env),
        "stats_log_interval": _env_float("CARROT_STATS_LOG_INTERVAL", 60.0, env),
    }
    values.update(given)
    values["base_url"] = str(values["base_url"]).rstrip("/")
    _check_delivery_settings(values, given)
    if values["batch_size"] < 1:
        raise ValueError("batch_size must be >= 1")
    _check_privacy_settings(values)
    if values["flush_interval"] <= 0:  # as soon as possible, as carrot-ai 0.2.1's worker took it: every 50 ms
        values["flush_interval"] = MIN_FLUSH_INTERVAL
    return Settings(**values)
