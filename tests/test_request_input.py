"""The record's ``input`` is the request the SDK sent: compared with the body the fake provider received, for what
callers pass back from earlier responses (pydantic models) and what the SDKs leave out of the request."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic

import carrot_ai
from tests.anthropic.conftest import make_client as anthropic_client
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import make_client as openai_client
from tests.openai.conftest import records

TOOL_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}


def _sent(fake: FakeOpenAI | FakeAnthropic, index: int) -> dict[str, Any]:
    body = fake.requests[index].json
    assert isinstance(body, dict)
    body.pop("stream", None)  # (a transport option: recorded as gen_ai.request.stream, not in the input)
    return body


def _inputs(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    return [r["input"] for r in sorted(records(ingest, count), key=lambda r: r["started_at"])]


class Answer(pydantic.BaseModel):
    q: str


def test_anthropic_content_blocks_passed_back_are_recorded_as_the_sdk_sends_them(
    fake_anthropic: FakeAnthropic, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(anthropic_client(fake_anthropic))
    tools = [{"name": "get", "description": "Look it up", "input_schema": TOOL_SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": "use tool please"}]
    first = client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=messages, tools=tools)
    tool_use = first.content[-1]
    assert tool_use.type == "tool_use"
    # The blocks as the SDK made them (a text block and a tool_use block, whose optional fields the JSON lacked),
    # appended as they are to the next request, as Anthropic's tool-use guide writes it.
    messages.append({"role": "assistant", "content": first.content})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "42"}]})
    client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=messages, tools=tools)
    # A whole message model passed back too (parse(): its parsed output is never sent).
    parsed = client.messages.parse(
        model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}], output_format=Answer
    )
    client.messages.create(
        model="claude-opus-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": parsed.content}],
    )

    inputs = _inputs(carrot, 4)
    assert inputs[1] == _sent(fake_anthropic, 1)
    assert inputs[1]["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": tool_use.id,
        "name": "get",
        "input": {"q": "q-value"},
    }  # no "caller": null, "toolset_name": null the SDK never sent
    assert inputs[3] == _sent(fake_anthropic, 3)
    assert "parsed_output" not in inputs[3]["messages"][1]["content"][0]


def test_openai_models_passed_back_are_recorded_as_the_sdk_sends_them(
    fake_openai: FakeOpenAI, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(openai_client(fake_openai))
    tools = [{"type": "function", "function": {"name": "get", "parameters": TOOL_SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": "use tool please"}]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    message = completion.choices[0].message
    assert message.tool_calls
    messages.append(message)  # the ChatCompletionMessage itself, as OpenAI's function-calling guide writes it
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "42"})
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)

    response_tools = [{"type": "function", "name": "get", "parameters": TOOL_SCHEMA}]
    response = client.responses.create(model="gpt-4o", input="use tool", tools=response_tools)
    call = response.output[-1]
    assert call.type == "function_call"
    items: list[Any] = [{"role": "user", "content": "use tool"}, *response.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "42"})
    client.responses.create(model="gpt-4o", input=items, tools=response_tools)
    # A parsed output (its ``parsed`` is excluded from what is sent: ``__api_exclude__``).
    parsed = client.responses.parse(model="gpt-4o", input="hi", text_format=Answer)
    client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "hi"}, *parsed.output])

    inputs = _inputs(carrot, 6)
    assert inputs[1] == _sent(fake_openai, 1)
    assert "audio" not in inputs[1]["messages"][1] and "function_call" not in inputs[1]["messages"][1]
    assert inputs[3] == _sent(fake_openai, 3)
    assert "caller" not in inputs[3]["input"][-2] and "namespace" not in inputs[3]["input"][-2]
    assert inputs[5] == _sent(fake_openai, 5)
    assert all("parsed" not in part for item in inputs[5]["input"][1:] for part in item.get("content") or ())


def test_a_model_is_dumped_with_the_aliases_and_fields_each_sdk_sends() -> None:
    """anthropic writes a model by alias, openai's request transform by field name: each record as its SDK."""
    from anthropic._utils._json import openapi_model_dump
    from anthropic.types import BrowserLeftClickDragInput
    from openai._utils._transform import transform
    from openai.types.chat import completion_create_params
    from openai.types.shared import ResponseFormatJSONSchema

    from carrot_ai._core._serialize import to_jsonable
    from carrot_ai.instrumentation.anthropic._extract import REQUEST_BODY as ANTHROPIC
    from carrot_ai.instrumentation.openai._extract import REQUEST_BODY as OPENAI

    point = {"type": "coordinate", "x": 1, "y": 2}
    drag = BrowserLeftClickDragInput.model_validate({"from": point, "target": point})
    assert to_jsonable([drag], request_body=ANTHROPIC) == [openapi_model_dump(drag)]
    assert "from" in to_jsonable(drag, request_body=ANTHROPIC)

    schema = ResponseFormatJSONSchema.model_validate(
        {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    )
    params = {"model": "m", "messages": [], "response_format": schema}
    sent = transform(params, completion_create_params.CompletionCreateParamsNonStreaming)
    assert to_jsonable(params, request_body=OPENAI) == sent


def test_converting_a_value_leaves_no_garbage_for_the_collector() -> None:
    """Every conversion (each ``@trace`` call's input and output, each request on the export worker) is freed by
    reference counting as it returns: the converter kept a bound method of itself, a reference cycle left for the
    garbage collector, three objects a conversion (found in review)."""
    import gc

    import openai

    from carrot_ai._core._serialize import to_jsonable
    from carrot_ai.instrumentation.openai._extract import REQUEST_BODY as OPENAI

    params = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": openai.NOT_GIVEN}
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            assert to_jsonable({"question": "q", "options": {"k": [1, 2]}}, mask_secrets=True)["options"] == {
                "k": [1, 2]
            }
            assert "temperature" not in to_jsonable(params, request_body=OPENAI)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_entries_the_sdk_leaves_out_are_not_recorded(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, carrot: IngestServer
) -> None:
    """``NotGiven`` / ``Omit`` anywhere in a mapping, and ``Omit`` in ``extra_body`` (which removes a parameter the
    call gave), are left out of the request by the SDKs: the record's input leaves them out too, rather than holding
    the sentinels' reprs."""
    oai = carrot_ai.wrap(openai_client(fake_openai))
    oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi", "name": openai.omit}],
        temperature=0.5,
        extra_body={"temperature": openai.omit, "top_logprobs": openai.NOT_GIVEN, "seed": 7},
    )
    claude = carrot_ai.wrap(anthropic_client(fake_anthropic))
    claude.messages.create(
        model="claude-opus-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": anthropic.omit}]}],
        metadata={"user_id": anthropic.NOT_GIVEN},
        service_tier="auto",
        extra_body={"service_tier": anthropic.omit},
    )

    chat, message = sorted(records(carrot, 2), key=lambda r: r["name"])
    assert chat["input"] == _sent(fake_openai, 0)
    assert chat["input"] == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 7}
    assert message["input"] == _sent(fake_anthropic, 0)
    assert message["input"]["metadata"] == {} and "service_tier" not in message["input"]


def test_an_anthropic_file_sent_base64_is_recorded_with_its_size_and_not_read_again(
    fake_anthropic: FakeAnthropic, carrot: IngestServer, tmp_path: Path
) -> None:
    """anthropic 2.x reads a ``pathlib.Path`` or a file object given as a base64 source's ``data`` and sends it
    encoded: the record's placeholder gives the size sent (it said 0 bytes), and carrot never reads the file (a file
    object is the caller's, its position theirs)."""
    image = tmp_path / "pixel.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(992))
    client = carrot_ai.wrap(anthropic_client(fake_anthropic))

    def ask(data: Any) -> None:
        source = {"type": "base64", "media_type": "image/png", "data": data}
        content = [{"type": "image", "source": source}, {"type": "text", "text": "what is it?"}]
        client.messages.create(model="claude-opus-4-5", max_tokens=20, messages=[{"role": "user", "content": content}])

    ask(image)
    with image.open("rb") as file:
        ask(file)
        after = file.tell()
    assert after == 1000  # (where the SDK's read left it)
    for record in records(carrot, 2):
        source = record["input"]["messages"][0]["content"][0]["source"]
        assert source == {"type": "base64", "media_type": "image/png", "data": "<media: image/png, 1000 bytes>"}
    sent = _sent(fake_anthropic, 0)["messages"][0]["content"][0]["source"]["data"]
    assert len(base64.b64decode(sent)) == 1000
