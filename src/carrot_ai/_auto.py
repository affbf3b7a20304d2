"""Zero-code setup: the ``carrot`` distro that ``opentelemetry-instrument`` loads.

``pip install "carrot-ai[auto,openai]"`` and ``CARROT_API_KEY=... opentelemetry-instrument python app.py`` is the
whole setup. ``opentelemetry-instrument`` loads one distro (entry point group ``opentelemetry_distro``), then one
configurator (which builds the SDK from ``OTEL_*_EXPORTER``), then every instrumentor. Two things there turn a
small mistake into no tracing at all: one exporter name that no installed package provides aborts the whole
setup (instrumentors included), and without a configurator (``opentelemetry-distro`` not installed) no SDK is
built. :class:`CarrotDistro` makes both harmless:

* defaults: ``OTEL_TRACES_EXPORTER=carrot`` (when ``CARROT_API_KEY`` or a local ``CARROT_BASE_URL`` is set),
  metrics and logs ``none``; when ``opentelemetry-distro`` is installed too, its defaults are kept (``otlp`` for
  every signal) and ``carrot`` is added to the traces;
* an exporter name that no installed package provides is left out, with a warning when the user named it, so
  the rest of the setup still runs;
* a name given twice (``carrot,carrot``) is kept once: each record is delivered once;
* with no configurator installed (or ``OTEL_PYTHON_CONFIGURATOR`` naming none) it builds the SDK itself, as
  ``opentelemetry-distro``'s would, except that the ``carrot`` exporter gets carrot's span processor (one record per
  model call, parents across non-exported spans) instead of the SDK's ``BatchSpanProcessor``.

``opentelemetry-instrument`` takes the first distro it finds: with ``opentelemetry-distro`` installed as well, set
``OTEL_PYTHON_DISTRO=carrot`` to be sure this one runs (or name the exporters yourself).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from collections.abc import MutableMapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from carrot_ai._config import is_loopback_url

logger = logging.getLogger("carrot_ai")

CARROT_EXPORTER = "carrot"
_SIGNALS = (
    ("traces", OTEL_TRACES_EXPORTER, "opentelemetry_traces_exporter"),
    ("metrics", OTEL_METRICS_EXPORTER, "opentelemetry_metrics_exporter"),
    ("logs", OTEL_LOGS_EXPORTER, "opentelemetry_logs_exporter"),
)
_OTLP_PACKAGES = {
    "otlp": "opentelemetry-exporter-otlp",
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}


class CarrotDistro(BaseDistro):  # type: ignore[misc]
    """The distro of ``opentelemetry-instrument`` for carrot-ai (entry point ``carrot``)."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            prepare_environment(os.environ)
        except Exception:  # a bug here must not cost the application its other telemetry
            logger.warning("carrot_ai: could not check the OTEL_*_EXPORTER settings", exc_info=True)
        if _configurator_installed():
            return  # it builds the SDK next, from the settings prepared above
        try:
            from opentelemetry.instrumentation.version import __version__
            from opentelemetry.sdk._configuration import _initialize_components, _OTelSDKConfigurator

            options: dict[str, Any] = {"auto_instrumentation_version": __version__}
            if "export_span_processor" in inspect.signature(_initialize_components).parameters:
                options["export_span_processor"] = export_span_processor
            _OTelSDKConfigurator().configure(**options)  # type: ignore[no-untyped-call]
        except Exception:
            # carrot's instrumentors still load and set up their own export on the first call.
            logger.warning("carrot_ai: the OpenTelemetry SDK could not be set up from OTEL_* settings", exc_info=True)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Load one instrumentor; carrot's own check that their library is installed (and quietly skip if not)."""
        if str(getattr(entry_point, "value", "")).startswith("carrot_ai."):
            kwargs.pop("skip_dep_check", None)
            kwargs["raise_exception_on_conflict"] = True  # the loader logs a missing library at debug level only
        entry_point.load()().instrument(**kwargs)


def prepare_environment(environ: MutableMapping[str, str], *, stock: bool | None = None) -> None:
    """Fill in carrot's defaults and leave out exporter names no installed package provides (in ``environ``).

    ``stock``: whether ``opentelemetry-distro`` is installed (default: look).
    """
    if stock is None:
        stock = importlib.util.find_spec("opentelemetry.distro") is not None
    if stock:
        # opentelemetry-distro's own defaults, so that its users' OTLP export goes on as before.
        environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    carrot_configured = bool(environ.get("CARROT_API_KEY")) or is_loopback_url(environ.get("CARROT_BASE_URL", ""))
    for signal, variable, group in _SIGNALS:
        value = environ.get(variable)
        explicit = value is not None
        if value is None:
            defaults = ["otlp"] if stock else []
            if signal == "traces" and carrot_configured:
                defaults.append(CARROT_EXPORTER)
            value = ",".join(defaults) or "none"
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names or value.strip().lower() == "none":
            environ[variable] = "none"
            continue
        kept = []
        for name in dict.fromkeys(names):
            if _resolvable(name, signal, group, environ):
                kept.append(name)
            elif explicit:
                package = _OTLP_PACKAGES.get(name)
                logger.warning(
                    "carrot_ai: %s names the exporter %r, which no installed package provides%s; it is left out so "
                    "that the rest of the OpenTelemetry setup still runs",
                    variable,
                    name,
                    f" (pip install {package})" if package else "",
                )
        environ[variable] = ",".join(kept) or "none"
    if CARROT_EXPORTER in environ[OTEL_TRACES_EXPORTER].split(",") and not carrot_configured:
        logger.warning(
            "carrot_ai: OTEL_TRACES_EXPORTER names carrot but CARROT_API_KEY is not set: the ingest API will refuse "
            "the records"
        )


def _resolvable(name: str, signal: str, group: str, environ: MutableMapping[str, str]) -> bool:
    resolved = name
    if name in _OTLP_PACKAGES:
        protocol = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        protocol = (protocol or "").strip()
        if name == "otlp":
            resolved = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}.get(protocol or "grpc", "")
            if not resolved:
                return True  # an unknown protocol: let the SDK say so
    return any(True for _ in entry_points(group=group, name=resolved))


def export_span_processor(exporter: Any) -> Any:
    """The span processor for one exporter named in ``OTEL_TRACES_EXPORTER``.

    carrot's exporter gets carrot's processor, which keeps one record per model call when another instrumentation
    sees the same call and gives another instrumentation's GenAI span its nearest exported ancestor as parent (the
    SDK's ``BatchSpanProcessor`` would only hand spans over). Every other exporter gets the SDK's default.
    """
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from carrot_ai.export import CarrotSpanExporter, CarrotSpanProcessor

    if isinstance(exporter, CarrotSpanExporter):
        return CarrotSpanProcessor(exporter)
    return BatchSpanProcessor(exporter)


def _configurator_installed() -> bool:
    """Whether ``opentelemetry-instrument`` runs a configurator after this distro (which then builds the SDK)."""
    chosen = os.environ.get("OTEL_PYTHON_CONFIGURATOR")
    return any(chosen is None or e.name == chosen for e in entry_points(group="opentelemetry_configurator"))
