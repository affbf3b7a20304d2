"""Carry the caller's context into threads, so a ``@trace`` parent reaches work done in a thread.

Python copies ``contextvars`` into asyncio tasks but not into threads. Once installed (``init()`` does it unless
``CARROT_PROPAGATE_TO_THREADS=false``), ``threading.Thread.start`` and ``ThreadPoolExecutor.submit`` run the
thread's target in a copy of the context of the code that started or submitted it: the OpenTelemetry span,
carrot's exported parent and ``carrot_ai.context(...)`` scopes all follow.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_installed = False  # whether the two methods are patched (once per process)
_enabled = False  # whether the patches carry the context (a later init() may say not to)
_original_start: Any = None
_original_submit: Any = None


_NOTHING: Any = object()


def _start(self: threading.Thread) -> None:
    if not _enabled:
        _original_start(self)
        return
    shadowed = _NOTHING
    try:
        ctx = contextvars.copy_context()
        shadowed = vars(self).get("run", _NOTHING)
        # An instance attribute shadows the class's run(), subclasses' overrides included. It holds the thread (its
        # bound run()): a cycle, which _run_in_context breaks when the run is over, so that a finished thread is
        # freed by its last reference, with the copied context (its spans) and what its target held, as without
        # carrot, not by the garbage collector some time later.
        self.run = functools.partial(_run_in_context, self, ctx, self.run, shadowed)  # type: ignore[method-assign]
    except Exception:
        pass
    try:
        _original_start(self)
    except BaseException:
        _unshadow(self, shadowed)  # never started: nothing will run it
        raise


def _run_in_context(thread: threading.Thread, ctx: contextvars.Context, run: Any, shadowed: Any) -> None:
    try:
        ctx.run(run)
    finally:
        _unshadow(thread, shadowed)


def _unshadow(thread: threading.Thread, shadowed: Any) -> None:
    """Put back the ``run`` attribute ``_start`` replaced: none (the class's), or the instance's own."""
    try:
        if shadowed is _NOTHING:
            vars(thread).pop("run", None)
        else:
            thread.run = shadowed  # type: ignore[method-assign]
    except Exception:
        pass


def _submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
    if not _enabled:
        return _original_submit(self, fn, *args, **kwargs)  # type: ignore[no-any-return]
    ctx = contextvars.copy_context()
    return _original_submit(self, ctx.run, fn, *args, **kwargs)  # type: ignore[no-any-return]


def install_thread_propagation() -> None:
    """Carry the context into threads: patch ``Thread.start`` and ``ThreadPoolExecutor.submit`` (once), or switch the
    patches back on."""
    global _installed, _enabled, _original_start, _original_submit
    _enabled = True
    if _installed:
        return
    _original_start = threading.Thread.start
    _original_submit = ThreadPoolExecutor.submit
    threading.Thread.start = _start  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign, assignment]
    _installed = True


def uninstall_thread_propagation() -> None:
    """Stop carrying the context into threads. The patches stay (switched off): another library may have wrapped them
    since, and restoring the originals would take its wrapper out too."""
    global _enabled
    _enabled = False
