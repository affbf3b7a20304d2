"""Containment: telemetry code never raises into the user's call.

Every piece of our code that runs on the user's thread (extracting attributes, ending spans, stream hooks) runs
under :func:`guard`. An internal error is counted, logged once per call site, and swallowed. Our own test suite
sets ``CARROT_STRICT=1`` so that such bugs fail the tests instead of hiding.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("carrot_ai")

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.Lock()
_logged: set[str] = set()
internal_errors = 0


def _reset_lock_after_fork() -> None:
    # A lock another thread held at fork time would stay held forever in the child, hanging its first report.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _strict() -> bool:
    return os.environ.get("CARROT_STRICT", "") in ("1", "true")


def report_internal_error(where: str, exc: BaseException) -> None:
    """Count an internal error and log it once per ``where``; re-raise in strict mode."""
    global internal_errors
    with _lock:
        internal_errors += 1
        first = where not in _logged
        _logged.add(where)
    if first:
        logger.warning("carrot_ai: internal error in %s (tracing continues; reported once): %r", where, exc)
    else:
        logger.debug("carrot_ai: internal error in %s: %r", where, exc)
    if _strict():
        raise exc


class guard:  # lower case: used as a function: ``with guard("where"):``
    """Run a block of telemetry code; an exception in it is reported and swallowed (``BaseException``s that are not
    ``Exception``s pass, as ``KeyboardInterrupt`` must). A class rather than a ``contextlib.contextmanager``: it runs
    on the calling thread's paths, and a generator-based context manager costs several Python calls more."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        report_internal_error(self.where, exc)  # type: ignore[arg-type]  # set with exc_type
        return True


def guarded(where: str, default: Any = None) -> Callable[[_F], _F]:
    """Decorate a telemetry function so that an exception in it is reported and ``default`` returned."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report_internal_error(where, exc)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate
