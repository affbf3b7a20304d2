"""A copy of a model call's keyword arguments for the export worker to read after the call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SNAPSHOT_ITEM_BYTES = 120  # a copied message dict or a list slot, beyond its text (an estimate, like the queue's)
_LONG_LIST = 64


def snapshot_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of a call's keyword arguments that the caller's later changes do not reach, and the bytes it holds.

    The request attributes and the record's input are extracted from it on the export worker, after the call has
    returned, by which time a caller has often appended the reply to its ``messages`` list, or changed its last
    message's content in place (moved a prompt-caching marker, edited or appended a block). Lists and dicts are
    copied one level down (the list of messages, and each message dict in it), and a message's ``content`` given as
    a list is copied whole (its parts and what they hold, as deep as JSON nests: :data:`_DEPTH`). Other deeper
    structures (a tool's schema) are shared: copying them for every call would cost more than the rare change of one
    after the call. The size is an estimate for the export queue's byte budget: the text of string values and of
    message contents (their parts' strings too, so inline images count), and a fixed part per item.
    """
    copy = dict(kwargs)
    size = 0
    for key, value in kwargs.items():
        kind = type(value)
        if kind is list or kind is tuple:
            count = len(value)
            dicts = count <= _LONG_LIST or type(value[0]) is dict
            if dicts:
                items = [dict(item) if type(item) is dict else item for item in value]
            else:  # a long list of texts or numbers (an embeddings input): copied at C speed
                items = list(value)
            copy[key] = items
            # Sized from the first items when the list is long, so the cost stays bounded (a message's content list is
            # copied whatever its place).
            part = 0
            for index, item in enumerate(items):
                sized = index < _LONG_LIST
                if type(item) is dict:
                    content = item.get("content")
                    if type(content) is list or type(content) is tuple:
                        if not dicts:  # (then ``items`` holds the caller's own dicts: never written to)
                            item = items[index] = dict(item)
                        item["content"], content_size = _copy_sized(content, _DEPTH)
                        part += (SNAPSHOT_ITEM_BYTES + content_size) if sized else 0
                    elif not sized:
                        continue
                    elif type(content) is str:
                        part += SNAPSHOT_ITEM_BYTES + len(content)
                    elif content is not None:
                        part += SNAPSHOT_ITEM_BYTES + _nested_size(content, 3)
                    else:
                        part += SNAPSHOT_ITEM_BYTES
                elif not sized:
                    if dicts:
                        continue
                    break
                elif type(item) is str:
                    part += SNAPSHOT_ITEM_BYTES + len(item)
                else:
                    part += SNAPSHOT_ITEM_BYTES
            size += part if count <= _LONG_LIST else part * count // _LONG_LIST
        elif kind is dict:
            copy[key] = dict(value)
            size += _nested_size(value, 2)
        elif kind is str:
            size += len(value)
    return copy, size


_DEPTH = 24  # how deep a message's content is copied; deeper parts (never seen in a real request) are shared


def _copy_sized(value: Any, depth: int) -> tuple[Any, int]:
    """A copy of a message's content list, its dicts and lists copied at every level down to ``depth`` (other values
    are immutable or not ours to copy), and the bytes it holds (as :func:`_nested_size` counts them)."""
    size = SNAPSHOT_ITEM_BYTES
    if type(value) is dict:
        copied: Any = {}
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                copied[key] = item
                size += len(item)
            elif (kind is dict or kind is list or kind is tuple) and depth > 0:
                copied[key], part = _copy_sized(item, depth - 1)
                size += part
            else:
                copied[key] = item
                size += SNAPSHOT_ITEM_BYTES
        return copied, size
    copied = []
    for item in value:
        kind = type(item)
        if kind is str:
            copied.append(item)
            size += len(item)
        elif (kind is dict or kind is list or kind is tuple) and depth > 0:
            item, part = _copy_sized(item, depth - 1)
            copied.append(item)
            size += part
        else:
            copied.append(item)
            size += SNAPSHOT_ITEM_BYTES
    return (copied if type(value) is list else tuple(copied)), size


def _nested_size(value: Any, depth: int) -> int:
    if type(value) is str:
        return len(value)
    if depth <= 0:
        return SNAPSHOT_ITEM_BYTES
    if type(value) is dict:
        return SNAPSHOT_ITEM_BYTES + sum(_nested_size(v, depth - 1) for v in value.values())
    if type(value) is list or type(value) is tuple:
        return SNAPSHOT_ITEM_BYTES + sum(_nested_size(v, depth - 1) for v in value)
    return SNAPSHOT_ITEM_BYTES
