"""The ``tags`` argument of ``@trace``, ``wrap()`` and ``patch_litellm()``, checked in one place."""

from __future__ import annotations

from collections.abc import Sequence


def checked_tags(tags: Sequence[str] | str | None, error: type[Exception]) -> Sequence[str] | None:
    """``tags`` as given: None, or strings; one string is one tag (carrot-ai 0.2.1 took a string, and split it into
    letters). Anything else raises ``error`` (each entry point keeps the exception type it documents)."""
    if isinstance(tags, str):
        return (tags,)
    if tags is not None and not all(isinstance(t, str) for t in tags):
        raise error("tags must be a list of strings")
    return tags
