"""A copy of a model call's keyword arguments for the export worker to read after the call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SNAPSHOT_ITEM_BYTES = 120  # a copied message dict or a list slot, beyond its text (an estimate, like the queue's)
_LONG_LIST = 64


def snapshot_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of a call's keyword arguments that the caller's later changes do not reach, and the bytes it holds.

    The request attributes and the record's input are extracted from it on the export worker, after the call has
    returned, by which time a caller has often appended the reply to its ``messages`` list. Lists and dicts are
    copied one level down (the list of messages, and each message dict in it); deeper structures (a message's list
    of content parts) are shared, as nothing in the SDKs' call patterns changes them in place. The size is an
    estimate for the export queue's byte budget: the text of string values and of string message contents, and a
    fixed part per item (content parts: their strings, a level down, so inline images count).
    """
    copy = dict(kwargs)
    size = 0
    for key, value in kwargs.items():
        kind = type(value)
        if kind is list or kind is tuple:
            count = len(value)
            if count <= _LONG_LIST or type(value[0]) is dict:
                items = [dict(item) if type(item) is dict else item for item in value]
            else:  # a long list of texts or numbers (an embeddings input): copied at C speed
                items = list(value)
            copy[key] = items
            # Sized from the first items when the list is long, so the cost stays bounded.
            sample = items if count <= _LONG_LIST else items[:_LONG_LIST]
            part = 0
            for item in sample:
                if type(item) is dict:
                    content = item.get("content")
                    if type(content) is str:
                        part += SNAPSHOT_ITEM_BYTES + len(content)
                    elif content is not None:
                        part += SNAPSHOT_ITEM_BYTES + _nested_size(content, 3)  # parts > part > image_url > data
                    else:
                        part += SNAPSHOT_ITEM_BYTES
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
