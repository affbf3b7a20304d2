"""The exporters of this process: a registry, and what happens to them at exit and across a fork.

* **exit**: one ``atexit`` hook gives every open exporter a shared deadline (``exit_timeout``) to deliver what it
  holds. A child of multiprocessing's ``fork`` start method leaves through ``os._exit()`` where ``atexit`` hooks
  never run, so the same hook is registered there as a multiprocessing finalizer.
* **fork**: in a forked child every exporter forgets its parent's queue, locks, worker and connections.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from carrot_ai._core._guard import report_internal_error

if TYPE_CHECKING:
    from carrot_ai.export._exporter import CarrotSpanExporter

_instances: weakref.WeakSet[CarrotSpanExporter] = weakref.WeakSet()
_exit_hook_registered = False


def register(exporter: CarrotSpanExporter) -> None:
    """Track ``exporter``: reset it in forked children, flush it at exit.

    One fork hook and one exit hook for all of them, registered with the first: a hook per exporter (what
    ``os.register_at_fork`` takes can never be removed) kept ~270 bytes for each exporter ever made, for the life
    of the process (an ``init()`` with other settings, or a ``CarrotClient(api_key=...)``, makes one)."""
    global _exit_hook_registered
    _instances.add(exporter)
    if not _exit_hook_registered:
        _exit_hook_registered = True
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_at_exit)
        _flush_at_multiprocessing_exit()


class _Token:
    """Something for multiprocessing's weak registry to hold on to."""


_MULTIPROCESSING_TOKEN = _Token()


def _flush_at_multiprocessing_exit() -> None:
    # A child of multiprocessing's "fork" start method leaves through os._exit(): atexit hooks never run there,
    # but multiprocessing's own finalizers do. Register one in each such child (after multiprocessing has
    # cleared the finalizers inherited from the parent).
    try:
        import multiprocessing.util

        multiprocessing.util.register_after_fork(_MULTIPROCESSING_TOKEN, _in_multiprocessing_child)
    except Exception:
        pass


def _in_multiprocessing_child(_: object) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _at_exit, exitpriority=0)


def _after_fork_in_child() -> None:
    for exporter in list(_instances):
        try:
            exporter._after_fork()
        except Exception as exc:  # one exporter's reset must not keep the others' from theirs
            report_internal_error("exporter after fork", exc)


def _at_exit() -> None:
    """Deliver what every open exporter holds, within one shared exit deadline each."""
    end_open_streams()  # their records are sent below
    exporters = live_exporters()
    now = time.monotonic()
    for exporter in exporters:
        exporter._begin_exit(now)
    for exporter in exporters:
        try:
            exporter._exit_flush()
        except Exception:
            pass


def end_open_streams() -> None:
    """End the streams still open, as left where they stand (at shutdown and exit: their records go out with the
    rest). None were made if the stream module was never loaded. Never raises."""
    streams = sys.modules.get("carrot_ai._core._stream")
    if streams is not None:
        try:
            streams.end_open_streams()
        except Exception as exc:
            report_internal_error("open streams at shutdown", exc)


def live_exporters() -> list[CarrotSpanExporter]:
    """Exporters created in this process that are not shut down."""
    return [e for e in list(_instances) if not e.closed]


def merged_stats(exporters: Iterable[CarrotSpanExporter]) -> dict[str, int]:
    """The counters of several exporters added up (the peak queue size is the largest one)."""
    total: dict[str, int] = {}
    for exporter in exporters:
        for key, value in exporter.snapshot().items():
            total[key] = max(total.get(key, 0), value) if key == "queue_peak_bytes" else total.get(key, 0) + value
    return total
