"""The containment guard: an internal error is counted and swallowed; what is not an ``Exception`` passes."""

from __future__ import annotations

import pytest

from carrot_ai._core import _guard
from carrot_ai._core._guard import guard


def test_an_exception_is_counted_and_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARROT_STRICT", raising=False)
    before = _guard.internal_errors
    reached = []
    with guard("test block"):
        reached.append(1)
        raise ValueError("boom")
    assert reached == [1]
    assert _guard.internal_errors == before + 1


def test_a_block_without_error_runs_to_its_end_and_counts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARROT_STRICT", raising=False)
    before = _guard.internal_errors
    with guard("test block") as value:
        done = True
    assert done and value is None
    assert _guard.internal_errors == before


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_what_is_not_an_exception_passes(monkeypatch: pytest.MonkeyPatch, error: type[BaseException]) -> None:
    monkeypatch.delenv("CARROT_STRICT", raising=False)
    before = _guard.internal_errors
    with pytest.raises(error), guard("test block"):
        raise error()
    assert _guard.internal_errors == before


def test_strict_mode_raises_the_error_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARROT_STRICT", "1")
    error = ValueError("strict")
    with pytest.raises(ValueError) as raised, guard("test block"):
        raise error
    assert raised.value is error
