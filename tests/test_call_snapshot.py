"""The snapshot of a call's arguments that the export worker reads after the call (pure function), and what it counts
against the export queue's byte budget."""

from __future__ import annotations

from typing import Any

from carrot_ai._core._snapshot import SNAPSHOT_ITEM_BYTES, snapshot_kwargs


def test_lists_and_dicts_are_copied_one_level_down_and_message_contents_whole() -> None:
    message = {"role": "user", "content": "hello"}
    block = {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}}
    parts: list[Any] = [block, {"type": "tool_result", "content": [{"type": "text", "text": "42"}]}]
    multimodal = {"role": "user", "content": parts}
    messages: list[Any] = [message, multimodal]
    metadata = {"user": "u1"}
    schema = {"type": "object", "properties": {}}
    tools = [{"name": "t", "input_schema": schema}]
    kwargs = {"model": "m", "messages": messages, "metadata": metadata, "temperature": 0.5, "tools": tools}

    snapshot, _ = snapshot_kwargs(kwargs)
    messages.append({"role": "assistant", "content": "hi"})
    message["content"] = "changed"
    metadata["user"] = "u2"
    kwargs["model"] = "other"
    # What a caller does to its last turn before the next call: the caching marker moved, a block edited and added.
    del block["cache_control"]
    block["text"] = "edited"
    parts[1]["content"][0]["text"] = "changed"
    parts.append({"type": "text", "text": "appended"})

    assert snapshot == {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hello"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                    {"type": "tool_result", "content": [{"type": "text", "text": "42"}]},
                ],
            },
        ],
        "metadata": {"user": "u1"},
        "temperature": 0.5,
        "tools": [{"name": "t", "input_schema": schema}],
    }
    assert snapshot["tools"][0]["input_schema"] is schema  # other deeper structures are shared, not copied


def test_a_content_nested_beyond_json_depth_is_copied_down_to_the_limit_and_shared_below() -> None:
    deep: Any = [{"type": "text", "text": "x"}]
    innermost = deep
    for _ in range(100):
        deep = [deep]
    snapshot, size = snapshot_kwargs({"messages": [{"role": "user", "content": deep}]})
    copied = snapshot["messages"][0]["content"]
    assert copied == deep and copied is not deep
    while copied is not innermost and isinstance(copied, list) and copied:
        copied = copied[0]
    assert copied is innermost or copied == innermost
    assert size > 0


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


def test_a_long_list_of_messages_after_one_that_is_not_a_dict_leaves_the_callers_dicts_alone() -> None:
    # Past 64 items, a list whose first item is not a dict (an SDK message object put back into the history) is
    # copied shallowly: its dicts are the caller's, and their content lists must be copied without writing to them.
    parts = [{"type": "text", "text": "look"}]
    last = {"role": "user", "content": parts}
    messages: list[Any] = [object(), *({"role": "user", "content": "x"} for _ in range(70)), last]
    snapshot, _ = snapshot_kwargs({"messages": messages})
    assert last["content"] is parts
    assert snapshot["messages"][-1] == {"role": "user", "content": [{"type": "text", "text": "look"}]}
    assert snapshot["messages"][-1]["content"] is not parts
