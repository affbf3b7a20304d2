"""The internal-error guard survives fork: a lock held by another thread at fork time does not hang the child."""

from __future__ import annotations

import os
import sys
import time

import pytest

from carrot_ai._core import _guard


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="fork() semantics of Linux")
def test_child_reports_internal_errors_although_the_lock_was_held_at_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARROT_STRICT", raising=False)
    lock = _guard._lock
    lock.acquire()  # as if another thread were reporting an error at the moment of the fork
    try:
        pid = os.fork()
        if pid == 0:  # the child: must not block on the inherited, held lock
            before = _guard.internal_errors
            _guard.report_internal_error("test child", ValueError("boom"))
            os._exit(0 if _guard.internal_errors == before + 1 else 3)
    finally:
        lock.release()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on the guard's lock")
