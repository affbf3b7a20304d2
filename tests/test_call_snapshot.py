"""The snapshot of a call's arguments that the export worker reads after the call (pure function), and what it counts
against the export queue's byte budget."""

from __future__ import annotations

from typing import Any

from carrot_ai._core._snapshot import SNAPSHOT_ITEM_BYTES, snapshot_kwargs


def test_lists_and_dicts_are_copied_one_level_down() -> None:
    message = {"role": "user", "content": "hello"}
    parts = [{"type": "text", "text": "look"}]
    multimodal = {"role": "user", "content": parts}
    messages: list[Any] = [message, multimodal]
    metadata = {"user": "u1"}
    kwargs = {"model": "m", "messages": messages, "metadata": metadata, "temperature": 0.5}

    snapshot, _ = snapshot_kwargs(kwargs)
    messages.append({"role": "assistant", "content": "hi"})
    message["content"] = "changed"
    metadata["user"] = "u2"
    kwargs["model"] = "other"

    assert snapshot == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}, {"role": "user", "content": parts}],
        "metadata": {"user": "u1"},
        "temperature": 0.5,
    }
    assert snapshot["messages"][1]["content"] is parts  # deeper structures are shared, not copied


def test_a_tuple_of_messages_is_kept_as_a_list_and_other_values_as_they_are() -> None:
    model_object = object()
    snapshot, _ = snapshot_kwargs({"messages": ({"role": "user", "content": "a"},), "response_format": model_object})
    assert snapshot == {"messages": [{"role": "user", "content": "a"}], "response_format": model_object}


def test_the_size_counts_text_and_inline_media_not_only_a_fixed_part() -> None:
    image = "data:image/png;base64," + "A" * 100_000
    small, small_size = snapshot_kwargs({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    _, text_size = snapshot_kwargs({"model": "m", "messages": [{"role": "user", "content": "x" * 50_000}]})
    _, openai_image = snapshot_kwargs(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]}
    )
    _, anthropic_image = snapshot_kwargs(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "A" * 100_000}}]}
            ],
        }
    )
    assert small_size == 1 + SNAPSHOT_ITEM_BYTES + 2
    assert text_size == 1 + SNAPSHOT_ITEM_BYTES + 50_000
    assert openai_image > 100_000
    assert anthropic_image > 100_000
    assert small["messages"] == [{"role": "user", "content": "hi"}]


def test_a_long_list_of_texts_is_copied_and_sized_from_its_first_items() -> None:
    texts = ["x" * 100] * 10_000
    snapshot, size = snapshot_kwargs({"model": "m", "input": texts})
    texts.append("more")
    assert snapshot["input"] == ["x" * 100] * 10_000
    assert size == 1 + 10_000 * (SNAPSHOT_ITEM_BYTES + 100)
