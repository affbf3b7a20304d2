"""Audio tokens of a chat completion (``prompt_tokens_details.audio_tokens``, ``completion_tokens_details
.audio_tokens``) reach the record and are priced at the model's audio rates, exactly as genai-prices prices them.

The client is pointed at ``https://api.openai.com`` (OpenAI's table prices apply only to calls sent there) and its
HTTP transport delivers each request to the fake server instead: the real SDK, over real HTTP."""

from __future__ import annotations

import base64
import datetime
import importlib
from collections.abc import Iterator
from typing import Any

import genai_prices
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import API_KEY, records
from tests.privacy_helpers import carrot_session

# The HTTP library of the installed SDK (httpx2 for openai 3.x, httpx before; both may be installed).
httpx: Any = importlib.import_module(
    next(c.__module__ for c in openai.DefaultHttpxClient.__mro__ if c.__module__.startswith("httpx")).split(".")[0]
)

AUDIO_MODEL = "gpt-audio"  # genai-prices: $2.5 / $10 text, $32 / $64 audio per million tokens
SPEAK = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "pcm16"}}


class _ToFake(httpx.BaseTransport):  # type: ignore[misc]
    """Sends each request to the fake server (same path and body); the SDK and carrot see api.openai.com."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self._target = httpx.URL(fake.base_url)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._target.scheme, host=self._target.host, port=self._target.port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server
        assert not server.errors, server.errors


def _openai_client(fake: FakeOpenAI) -> openai.OpenAI:
    return carrot_ai.wrap(
        openai.OpenAI(api_key=API_KEY, max_retries=0, http_client=openai.DefaultHttpxClient(transport=_ToFake(fake)))
    )


def _spoken_question(text: str = "what does this say", audio_bytes: int = 3200) -> list[dict[str, Any]]:
    audio = base64.b64encode(bytes(audio_bytes)).decode("ascii")
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
            ],
        }
    ]


def _table_price(usage: openai.types.CompletionUsage, model: str, when: datetime.datetime) -> float:
    """genai-prices' own price for the SDK's usage object, every count it reports passed as is."""
    prompt_details, completion_details = usage.prompt_tokens_details, usage.completion_tokens_details
    assert prompt_details is not None and completion_details is not None
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=prompt_details.cached_tokens or 0,
            output_reasoning_tokens=completion_details.reasoning_tokens or 0,
            input_audio_tokens=prompt_details.audio_tokens or 0,
            output_audio_tokens=completion_details.audio_tokens or 0,
        ),
        model,
        provider_id="openai",
        genai_request_timestamp=when,
    )
    return float(price.total_price)


def _transcript_piece(chunk: Any) -> str:
    """The transcript text of a chunk's ``delta.audio`` (a dict on SDKs whose delta model has no ``audio``)."""
    if not chunk.choices:
        return ""
    delta = chunk.choices[0].delta
    audio = getattr(delta, "audio", None) or (delta.model_extra or {}).get("audio")
    transcript = audio.get("transcript") if isinstance(audio, dict) else getattr(audio, "transcript", None)
    return transcript or ""


def _started_at(record: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))


def test_a_spoken_answer_to_a_spoken_question_is_priced_at_the_audio_rates(
    fake: FakeOpenAI, carrot: IngestServer
) -> None:
    client = _openai_client(fake)
    completion = client.chat.completions.create(model=AUDIO_MODEL, messages=_spoken_question(), **SPEAK)
    client.close()

    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    input_audio, output_audio = usage.prompt_tokens_details.audio_tokens, usage.completion_tokens_details.audio_tokens
    assert input_audio and output_audio  # the fake reports both, as the real API does
    [record] = records(carrot, 1)
    metadata = record["metadata"]
    assert metadata["input_audio_tokens"] == input_audio
    assert metadata["output_audio_tokens"] == output_audio
    assert (metadata["input_tokens"], metadata["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    expected = _table_price(usage, AUDIO_MODEL, _started_at(record))
    text_only = (usage.prompt_tokens * 2.5 + usage.completion_tokens * 10) / 1e6
    assert metadata["cost_usd"] == expected != pytest.approx(text_only)


@pytest.mark.parametrize("caller_asks_usage", [False, True], ids=["carrot-asks-usage", "caller-asks-usage"])
def test_a_streamed_spoken_answer_is_priced_at_the_audio_rates(
    fake: FakeOpenAI, carrot: IngestServer, caller_asks_usage: bool
) -> None:
    client = _openai_client(fake)
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_asks_usage else {}
    stream = client.chat.completions.create(
        model=AUDIO_MODEL, messages=_spoken_question("say it back"), stream=True, **SPEAK, **options
    )
    chunks = list(stream)
    client.close()

    assert "".join(_transcript_piece(c) for c in chunks) == "Echo: say it back"
    [record] = records(carrot, 1)
    metadata = record["metadata"]
    if caller_asks_usage:
        usage = chunks[-1].usage
    else:  # the usage chunk carrot asked for is hidden from the caller: the same question asked of the bare SDK
        bare = openai.OpenAI(base_url=fake.base_url + "/v1", api_key=API_KEY, max_retries=0)
        usage = bare.chat.completions.create(model=AUDIO_MODEL, messages=_spoken_question("say it back"), **SPEAK).usage
        bare.close()
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert metadata["input_audio_tokens"] == usage.prompt_tokens_details.audio_tokens > 0
    assert metadata["output_audio_tokens"] == usage.completion_tokens_details.audio_tokens > 0
    assert (metadata["input_tokens"], metadata["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    usage.prompt_tokens_details.cached_tokens = metadata.get("cache_read_input_tokens", 0)  # (the second ask's differ)
    assert metadata["cost_usd"] == _table_price(usage, AUDIO_MODEL, _started_at(record))


def test_a_text_answer_has_no_audio_fields(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = _openai_client(fake)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    client.close()
    [record] = records(carrot, 1)
    assert "input_audio_tokens" not in record["metadata"] and "output_audio_tokens" not in record["metadata"]
    assert record["metadata"]["cost_usd"] > 0


@pytest.mark.parametrize(
    ("price", "rates"),
    [
        ({"input": 1.0, "output": 2.0}, (1.0, 2.0, 1.0, 2.0)),
        ({"input": 1.0, "output": 2.0, "input_audio": 40.0, "output_audio": 80.0}, (1.0, 2.0, 40.0, 80.0)),
    ],
    ids=["text-rates-for-audio", "audio-rates"],
)
def test_a_user_price_bills_audio_at_its_audio_rates_or_else_its_input_and_output_rates(
    fake: FakeOpenAI,
    ingest: IngestServer,
    tracer_provider: TracerProvider,
    price: dict[str, float],
    rates: tuple[float, float, float, float],
) -> None:
    with carrot_session(ingest, tracer_provider, prices={AUDIO_MODEL: price}):
        client = _openai_client(fake)
        completion = client.chat.completions.create(model=AUDIO_MODEL, messages=_spoken_question(), **SPEAK)
        client.close()
        [record] = records(ingest, 1)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    input_audio = usage.prompt_tokens_details.audio_tokens or 0
    output_audio = usage.completion_tokens_details.audio_tokens or 0
    text_in, text_out, audio_in, audio_out = rates
    expected = (
        (usage.prompt_tokens - input_audio) * text_in
        + input_audio * audio_in
        + (usage.completion_tokens - output_audio) * text_out
        + output_audio * audio_out
    ) / 1e6
    assert record["metadata"]["cost_usd"] == pytest.approx(expected, rel=1e-12)
