"""Setup: ``init()``, auto-init on first use, attaching to the tracer provider, flush and exit.

``init()`` attaches to the application's OpenTelemetry SDK ``TracerProvider`` when there is one (it adds our
processor and changes nothing else); otherwise it creates one and installs it globally. At normal interpreter
exit, queued records are delivered within ``exit_timeout`` seconds (2 by default).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from carrot_ai._config import Settings, is_loopback_url, resolve_settings, sdk_disabled
from carrot_ai._core import _content, _fastspan, _tracing
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._threads import install_thread_propagation, uninstall_thread_propagation

logger = logging.getLogger("carrot_ai")


class _State:
    __slots__ = ("settings", "exporter", "processor", "provider", "owns_provider")

    def __init__(self, settings: Settings, exporter: Any, processor: Any, provider: Any, owns_provider: bool) -> None:
        self.settings = settings
        self.exporter = exporter
        self.processor = processor
        self.provider = provider
        self.owns_provider = owns_provider


_lock = threading.RLock()
_state: _State | None = None
_ended_exporter: Any = None  # the exporter shutdown() ended: stats() still reports its final counts
_auto_init_tried = False
_atexit_registered = False
_auto_initializing = False  # set while init() runs from the environment on first use (_auto_init)


def init(
    api_key: str | None = None,
    base_url: str | None = None,
    flush_interval: float = 5.0,
    batch_size: int = 50,
    *,
    capture_content: bool | None = None,
    redact: bool | None = None,
    redact_fn: Callable[[str], str] | None = None,
    tracer_provider: TracerProvider | None = None,
    **options: Any,
) -> None:
    """Set up tracing: Carrot records are sent in the background to ``{base_url}/v1/traces/ingest``.

    Args:
        api_key: your Carrot API key; defaults to ``CARROT_API_KEY``. Not needed for a local ingest server.
        base_url: the API endpoint; defaults to ``CARROT_BASE_URL``, then ``https://api.carrotlabs.ai``.
        flush_interval: seconds between background flushes (0: as soon as possible, every 50 ms).
        batch_size: the most records sent in one request.
        capture_content: record prompts and responses (default ``CARROT_TRACE_CONTENT``, else true).
        redact: mask emails, phone numbers and card numbers (default ``CARROT_TRACE_REDACT``, else false).
        redact_fn: your own masking function for strings, applied after the built-in patterns (turns ``redact`` on).
        tracer_provider: the SDK ``TracerProvider`` to attach to (default: the global one, or a new one).
        options: any other :class:`~carrot_ai._config.Settings` field (``max_queue_bytes``, ``exit_timeout``,
            ``max_string_length``, ``max_media_bytes``, ``prices`` ...).

    Calling it again is harmless; with different settings, the new ones replace the old.
    Raises ``ValueError`` for a ``base_url`` that is not an http(s) URL with a host, when no API key is available for
    a remote ``base_url``, for a delivery setting it cannot run with (a ``request_timeout`` of 0, an
    ``exit_timeout`` that is not a number of seconds), and for a privacy setting of the wrong type
    (``capture_content="false"``, a ``redact_fn`` that is not callable, a ``max_string_length`` below 1).
    """
    if sdk_disabled():
        return
    unknown = set(options) - set(Settings.__dataclass_fields__)
    if unknown:
        raise TypeError(f"init() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    settings = resolve_settings(
        api_key=api_key,
        base_url=base_url,
        flush_interval=flush_interval,
        batch_size=batch_size,
        capture_content=capture_content,
        redact=redact,
        redact_fn=redact_fn,
        **options,
    )
    _check_base_url(settings.base_url)
    if not settings.api_key and not is_loopback_url(settings.base_url):
        raise ValueError(
            "carrot_ai.init(): no API key. Pass api_key=... or set the CARROT_API_KEY environment variable "
            "(a local ingest server at http://127.0.0.1 needs none)."
        )
    with _lock:
        _apply(settings, tracer_provider)


def _check_base_url(url: str) -> None:
    """Refuse a base URL no record could be sent to (``localhost:8787``, ``ftp://...``, a port past 65535): taken as
    given, each batch would be lost to it, an internal error or refused connections until its deadline."""
    from carrot_ai.export._urls import redact_url

    try:
        parts = urlsplit(url.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError past 65535)
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            f"carrot_ai.init(): base_url must be an http:// or https:// URL with a host, such as "
            f"https://api.carrotlabs.ai or http://127.0.0.1:8787, not {redact_url(url)!r}"
        )


def _apply(settings: Settings, tracer_provider: TracerProvider | None) -> None:
    global _state, _atexit_registered
    from carrot_ai.export import _cost
    from carrot_ai.export._exporter import CarrotSpanExporter, live_exporters
    from carrot_ai.export._processor import CarrotSpanProcessor

    _cost.set_price_overrides(settings.prices)  # validates: a bad price table is a ValueError from init()
    _content.set_policy(_make_policy(settings))
    if _state is not None:
        _join_application_provider(_state, tracer_provider, live_exporters())
        if _state.settings == settings:
            return
        _state.settings = settings
        if _state.processor is None:
            # The exporter built from OTEL_TRACES_EXPORTER=carrot keeps its own settings; the content policy and
            # prices above still apply.
            logger.info("carrot_ai.init(): the exporter set up by OTEL_TRACES_EXPORTER keeps its settings")
            return
        old = _state.exporter
        _state.exporter = CarrotSpanExporter(settings=settings)
        _state.exporter._carrot_attached_by = "init"
        _state.processor.exporter = _state.exporter
        # The fast path reads the exporter's queue (whether work may be deferred to its worker): the new one's.
        _fastspan.enable(_state.provider, _state.processor)
        # The old exporter delivers what it holds (bounded by its exit_timeout) without blocking this caller;
        # a non-daemon thread, so interpreter exit waits for that bounded delivery.
        threading.Thread(target=_shutdown_quietly, args=(old,), name="carrot-ai-reinit", daemon=False).start()
        return

    provider: Any = tracer_provider or trace.get_tracer_provider()
    owns = False
    if not isinstance(provider, TracerProvider):
        proxy = isinstance(provider, trace.ProxyTracerProvider)
        provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
        if proxy and not _auto_initializing:
            trace.set_tracer_provider(provider)
        # Ours stays private to our spans if someone installed a provider that is not the SDK's, and when set up
        # implicitly on first use: the global provider is the application's to set, maybe later (OpenTelemetry
        # refuses a second one).
        owns = True
    existing = [] if owns else _exporters_fed_by(provider, live_exporters())
    if existing:
        # An exporter from OTEL_TRACES_EXPORTER=carrot already feeds this provider: one delivery path only.
        exporter = existing[0]
        processor = None
        if getattr(exporter, "_carrot_processor", None) is None:
            # Fed by the SDK's BatchSpanProcessor: add the marking half of ours (one record per model call).
            provider.add_span_processor(CarrotSpanProcessor(exporter, deliver=False))
    else:
        exporter = CarrotSpanExporter(settings=settings)
        exporter._carrot_attached_by = "init"  # type: ignore[attr-defined]
        processor = _processor_left_by_shutdown(provider)
        if processor is not None:
            processor.exporter = exporter
            exporter._carrot_processor = processor  # type: ignore[attr-defined]
        else:
            processor = CarrotSpanProcessor(exporter)
            provider.add_span_processor(processor)
        _fastspan.enable(provider, processor)
    _state = _State(settings, exporter, processor, provider, owns)
    # Our spans go to the provider we attached to (this also drops tracers cached while no provider was set).
    _tracing.set_tracer_provider(None if provider is trace.get_tracer_provider() else provider)
    if settings.propagate_to_threads:
        install_thread_propagation()
    else:
        uninstall_thread_propagation()  # (an earlier init() may have switched it on)
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True


def _join_application_provider(state: _State, tracer_provider: TracerProvider | None, exporters: list[Any]) -> None:
    """Move to the application's SDK provider when carrot runs on a provider of its own (set up on first use, before
    the application configured OpenTelemetry): an ``init()`` then attaches as it would have from the start. The
    private provider keeps the processor for the spans still open on it."""
    if not state.owns_provider or state.processor is None:
        return
    provider = tracer_provider or trace.get_tracer_provider()
    if provider is state.provider or not isinstance(provider, TracerProvider) or _exporters_fed_by(provider, exporters):
        return
    provider.add_span_processor(state.processor)
    _fastspan.enable(provider, state.processor)
    state.provider = provider
    state.owns_provider = False
    _tracing.set_tracer_provider(None if provider is trace.get_tracer_provider() else provider)


def _processors_and_exporters(provider: Any) -> list[tuple[Any, str, Any]]:
    """``(processor, attribute, exporter)`` for each span processor of ``provider`` with an exporter: carrot's
    (``exporter``) or the SDK's batch / simple processor (``span_exporter``)."""
    multi = getattr(provider, "_active_span_processor", None)
    found = []
    for processor in getattr(multi, "_span_processors", None) or ():
        for name in ("exporter", "span_exporter"):
            try:
                exporter = getattr(processor, name, None)
            except Exception:
                continue
            if exporter is not None:
                found.append((processor, name, exporter))
    return found


def _processors_feeding(provider: Any, exporters: list[Any]) -> list[Any]:
    """The SDK span processors of ``provider`` (batch or simple) whose exporter is one of ``exporters``."""
    return [
        processor
        for processor, name, exporter in _processors_and_exporters(provider)
        if name == "span_exporter" and any(exporter is e for e in exporters)
    ]


def _exporters_fed_by(provider: Any, exporters: list[Any]) -> list[Any]:
    """The carrot exporters, of ``exporters`` and not set up by ``init()``, that ``provider``'s span processors feed
    (ours, or the SDK's batch / simple processor). Another one (a ``CarrotClient`` of its own, an exporter on another
    provider) never sees this provider's spans."""
    fed = [exporter for _, _, exporter in _processors_and_exporters(provider)]
    return [e for e in exporters if getattr(e, "_carrot_attached_by", None) is None and any(e is f for f in fed)]


def _processor_left_by_shutdown(provider: Any) -> Any:
    """Carrot's processor that an earlier ``shutdown()`` left on ``provider`` (an SDK provider cannot remove one), or
    None. A new ``init()`` feeds its new exporter through it: a second one beside it would see every span too, count it
    lost in the stopped exporter, and cost every call carrot's fast path (taken while carrot's is the only one)."""
    from carrot_ai.export._processor import CarrotSpanProcessor

    for processor, name, exporter in _processors_and_exporters(provider):
        if (
            type(processor) is CarrotSpanProcessor
            and name == "exporter"
            and getattr(exporter, "_carrot_attached_by", None) == "init"
            and exporter.closed
        ):
            return processor
    return None


def _shutdown_quietly(exporter: Any) -> None:
    try:
        exporter.shutdown()
    except Exception as exc:
        report_internal_error("shutdown of the replaced exporter", exc)


def _make_policy(settings: Settings) -> _content.ContentPolicy:
    return _content.policy_from_settings(settings)


def ensure_started() -> bool:
    """Whether our spans should be made; auto-inits from the environment on first use. Never raises."""
    if _state is not None:
        return True
    return _auto_init()


def _auto_init() -> bool:
    global _auto_init_tried, _auto_initializing
    if sdk_disabled():
        return False
    if _auto_init_tried and not _auto_initializing:
        return True
    with _lock:  # (held while another thread sets up: its calls wait for the exporter rather than go unrecorded)
        if _auto_init_tried or _state is not None:
            return True
        if os.environ.get("CARROT_API_KEY") or is_loopback_url(os.environ.get("CARROT_BASE_URL", "")):
            _auto_initializing = True
            _auto_init_tried = True
            try:
                from_env = resolve_settings()  # init()'s own defaults would hide CARROT_FLUSH_INTERVAL / _BATCH_SIZE
                init(flush_interval=from_env.flush_interval, batch_size=from_env.batch_size)
            except Exception as exc:
                report_internal_error("auto-init", exc)
            finally:
                _auto_initializing = False
        _auto_init_tried = True
    return True


def flush(timeout: float = 10.0) -> bool:
    """Deliver every queued record now; True if all of it arrived within ``timeout`` seconds."""
    state = _state
    if state is None:  # maybe exporters set up through OTEL_TRACES_EXPORTER=carrot
        from carrot_ai.export._exporter import live_exporters

        exporters = live_exporters()
        provider: Any = trace.get_tracer_provider()
    else:
        exporters = [state.exporter]
        provider = state.provider
    try:
        deadline = time.monotonic() + timeout
        delivered = True
        # The SDK's processor in front of an exporter of OTEL_TRACES_EXPORTER=carrot hands over what it still holds
        # (it only queues: its export() is ours).
        for processor in _processors_feeding(provider, exporters):
            delivered = bool(processor.force_flush(int(max(deadline - time.monotonic(), 0.0) * 1000))) and delivered
        for exporter in exporters:  # one shared timeout
            remaining_ms = int(max(deadline - time.monotonic(), 0.0) * 1000)
            delivered = bool(exporter.force_flush(remaining_ms)) and delivered
        return delivered
    except Exception as exc:
        report_internal_error("flush", exc)
        return False


def shutdown() -> None:
    """Deliver what is queued (bounded by ``exit_timeout``) and stop exporting."""
    global _state, _auto_init_tried, _ended_exporter
    with _lock:
        state, _state = _state, None
        _auto_init_tried = False
    if state is None:
        return
    _ended_exporter = state.exporter
    from carrot_ai.export._lifecycle import end_open_streams

    end_open_streams()
    _fastspan.disable()
    _tracing.set_tracer_provider(None)  # never keep recording on a provider that is being shut down
    try:
        if state.processor is not None:
            state.processor.shutdown()
        else:
            # The exporter belongs to the SDK's processor (OTEL_TRACES_EXPORTER=carrot), which still holds spans and
            # shuts the exporter down in its own exit hook: hand over and deliver now, leave the closing to it. Only
            # that processor: the SDK's force_flush ignores its timeout, and the application's exporters are not ours
            # to wait for.
            deadline = time.monotonic() + state.settings.exit_timeout
            for processor in _processors_feeding(state.provider, [state.exporter]):
                processor.force_flush(int(max(deadline - time.monotonic(), 0.0) * 1000))
            state.exporter.force_flush(int(max(deadline - time.monotonic(), 0.0) * 1000))
        if state.owns_provider and state.provider is not trace.get_tracer_provider():
            state.provider.shutdown()
    except Exception as exc:
        report_internal_error("shutdown", exc)


def stats() -> dict[str, Any]:
    """Counters of the export path: records delivered, and records lost by reason."""
    from carrot_ai._core import _guard
    from carrot_ai.export._exporter import live_exporters, merged_stats

    state = _state
    exporters = [state.exporter] if state is not None else live_exporters()
    if not exporters and _ended_exporter is not None:
        exporters = [_ended_exporter]
    data: dict[str, Any] = merged_stats(exporters)
    data["internal_errors"] = _guard.internal_errors
    return data


def current_exporter() -> Any:
    """The exporter ``init()`` set up, or None."""
    return _state.exporter if _state is not None else None


def _at_exit() -> None:
    global _auto_init_tried
    shutdown()
    _auto_init_tried = True  # a traced call made later in the exit sequence must not start a new exporter
