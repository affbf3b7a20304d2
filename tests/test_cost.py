"""``metadata.cost_usd``: genai-prices (offline) or user prices; cache and reasoning tokens; absent when unknown."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai import semconv
from carrot_ai.export import _cost
from carrot_ai.export._cost import TokenUsage, cost_usd
from tests.ingest_server import IngestServer
from tests.privacy_helpers import carrot_session, records_after_flush

WHEN = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def _no_overrides() -> Any:
    _cost.set_price_overrides(None)
    yield
    _cost.set_price_overrides(None)


def _llm_event(
    model: str, usage: dict[str, Any] | None, provider: str | None = "openai", **extra: Any
) -> dict[str, Any]:
    now = time.time() * 1000
    llm: dict[str, Any] = {"model": model}
    if usage is not None:
        llm["usage"] = usage
    event: dict[str, Any] = {
        "start_time_ms": now - 100,
        "end_time_ms": now,
        "status": {"state": "ok"},
        "properties": {"llm": llm},
        **extra,
    }
    if provider:
        event["instrumentation"] = {"source_provider": provider}
    return event


# --- genai-prices ------------------------------------------------------------------------------------------------


def test_known_model_is_priced_per_input_and_output_token() -> None:
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(1000, 100), WHEN) == pytest.approx(0.0035)


def test_dated_model_name_resolves_to_its_family() -> None:
    assert cost_usd("openai", ("gpt-4o-2024-08-06",), TokenUsage(1000, 100), WHEN) == pytest.approx(0.0035)


def test_cache_reads_are_billed_at_the_cache_rate_within_input() -> None:
    # gpt-4o: $2.5 input, $1.25 cached input, $10 output per million; 800 of the 1000 input tokens were cached.
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(1000, 100, cache_read=800), WHEN) == pytest.approx(
        (200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6
    )


def test_anthropic_cache_writes_and_reads_are_billed_at_their_rates() -> None:
    # claude-sonnet-4-5: $3 input, $0.3 cache read, $3.75 cache write, $15 output per million.
    usage = TokenUsage(input=1000, output=100, cache_read=200, cache_write=300)
    assert cost_usd("anthropic", ("claude-sonnet-4-5",), usage, WHEN) == pytest.approx(
        (500 * 3 + 200 * 0.3 + 300 * 3.75 + 100 * 15) / 1e6
    )


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"])
def test_one_hour_cache_writes_are_billed_at_their_own_rate(model: str) -> None:
    # Anthropic bills a 1-hour cache write at 2x the input rate, a 5-minute one at 1.25x; 300 of the 500 written
    # tokens were written for an hour. Both sides of claude-sonnet-4-5's 200k-token tier threshold.
    import genai_prices

    for total_input in (1_000, 250_000):
        usage = TokenUsage(input=total_input, output=100, cache_read=200, cache_write=500, cache_write_1h=300)
        expected = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=total_input,
                output_tokens=100,
                cache_read_tokens=200,
                cache_write_tokens=500,
                cache_write_1h_tokens=300,
            ),
            model,
            provider_id="anthropic",
            genai_request_timestamp=WHEN,
        ).total_price
        five_minutes_only = cost_usd("anthropic", (model,), usage._replace(cache_write_1h=0), WHEN)
        assert cost_usd("anthropic", (model,), usage, WHEN) == float(expected) != five_minutes_only


def test_a_foreign_anthropic_span_with_one_hour_cache_writes_is_priced_for_them(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    """anthropic 2.x's own span names the 1-hour part of the cache writes; the cost bills it at 2x the input rate."""
    tracer = tracer_provider.get_tracer(semconv.SCOPE_ANTHROPIC_SDK)
    with carrot_session(ingest, tracer_provider):
        with tracer.start_as_current_span("anthropic.messages.create") as span:
            span.set_attributes(
                {
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_PROVIDER_NAME: "anthropic",
                    semconv.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-6",
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 2000,
                    "gen_ai.usage.cache_write.input_tokens": 1000,
                    "gen_ai.usage.cache_read.input_tokens": 0,
                    "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 0,
                    "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 1000,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                }
            )
        [record] = records_after_flush(ingest, 1)
        # claude-sonnet-4-6: $3 input, $6 1-hour cache write, $15 output per million.
        assert record["metadata"]["cache_write_1h_input_tokens"] == 1000
        assert record["metadata"]["cost_usd"] == pytest.approx((1000 * 3 + 1000 * 6 + 100 * 15) / 1e6)


def test_reasoning_tokens_are_part_of_output_not_extra() -> None:
    plain = cost_usd("openai", ("o3",), TokenUsage(1000, 1000), WHEN)
    with_reasoning = cost_usd("openai", ("o3",), TokenUsage(1000, 1000, reasoning=900), WHEN)
    assert plain is not None and with_reasoning == plain


def test_reasoning_tokens_use_their_own_rate_where_the_model_has_one() -> None:
    # sonar-deep-research: $2 input, $8 output, $3 reasoning per million.
    cost = cost_usd("perplexity", ("sonar-deep-research",), TokenUsage(1000, 1000, reasoning=400), WHEN)
    assert cost == pytest.approx((1000 * 2 + 600 * 8 + 400 * 3) / 1e6)


@pytest.mark.parametrize("model", ["gpt-audio", "gpt-audio-mini", "gpt-4o-audio-preview", "gpt-4o-mini-audio-preview"])
def test_audio_tokens_are_billed_at_the_audio_rates_as_genai_prices_bills_them(model: str) -> None:
    # gpt-audio: $2.5 / $10 text, $32 / $64 audio per million; the -preview models have no audio rates in the table
    # (audio tokens are then billed as text, as genai-prices does). Audio tokens are part of input / output.
    import genai_prices

    for usage in (
        TokenUsage(1000, 500, input_audio=600),
        TokenUsage(1000, 500, output_audio=400),
        TokenUsage(1000, 500, cache_read=200, reasoning=50, input_audio=600, output_audio=400),
    ):
        expected = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=usage.input,
                output_tokens=usage.output,
                cache_read_tokens=usage.cache_read,
                output_reasoning_tokens=usage.reasoning,
                input_audio_tokens=usage.input_audio,
                output_audio_tokens=usage.output_audio,
            ),
            model,
            provider_id="openai",
            genai_request_timestamp=WHEN,
        ).total_price
        assert cost_usd("openai", (model,), usage, WHEN) == float(expected)
    as_text = cost_usd("openai", ("gpt-audio",), TokenUsage(1000, 500), WHEN)
    assert (
        cost_usd("openai", ("gpt-audio",), TokenUsage(1000, 500, input_audio=600, output_audio=400), WHEN)
        == (pytest.approx((400 * 2.5 + 600 * 32 + 100 * 10 + 400 * 64) / 1e6))
        != as_text
    )


def test_audio_tokens_beyond_input_or_output_have_no_cost() -> None:
    assert cost_usd("openai", ("gpt-audio",), TokenUsage(100, 100, input_audio=101), WHEN) is None
    assert cost_usd("openai", ("gpt-audio",), TokenUsage(100, 100, output_audio=101), WHEN) is None


def test_response_model_is_tried_before_request_model() -> None:
    assert cost_usd("openai", ("no-such-model-x", "gpt-4o"), TokenUsage(1000, 100), WHEN) == pytest.approx(0.0035)


def test_unknown_model_has_no_cost() -> None:
    assert cost_usd("openai", ("my-finetune-that-does-not-exist",), TokenUsage(1000, 100), WHEN) is None


def _table_with(provider_id: str, model_id: str, price: Any) -> Any:
    """A price table like the installed one, with ``model_id``'s price (of ``provider_id``) replaced by ``price``, or
    the model left out when ``price`` is None."""
    import dataclasses

    from genai_prices import data_snapshot

    def models(provider: Any) -> list[Any]:
        if price is None:
            return [model for model in provider.models if model.id != model_id]
        return [dataclasses.replace(m, prices=price) if m.id == model_id else m for m in provider.models]

    providers = [
        dataclasses.replace(provider, models=models(provider)) if provider.id == provider_id else provider
        for provider in data_snapshot.get_snapshot().providers
    ]
    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)


def _price(input_mtok: int, output_mtok: int) -> Any:
    import genai_prices

    return genai_prices.types.ModelPrice(input_mtok=Decimal(input_mtok), output_mtok=Decimal(output_mtok))


def test_a_price_table_installed_later_prices_the_calls_after_it() -> None:
    """genai-prices' ``UpdatePrices`` (or the application) may install a new table: carrot's memo of a model's price
    is of the table it was read from, never of the one after."""
    from genai_prices import data_snapshot

    usage = TokenUsage(1000, 100)
    assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(0.0035)  # (remembered)
    data_snapshot.set_custom_snapshot(_table_with("openai", "gpt-4o", _price(5, 20)))
    try:
        assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(0.007)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(0.0035)


def test_a_model_a_table_did_not_know_is_priced_again_under_the_next_table() -> None:
    """What a table did not know (a model it could not price) is forgotten with it: the table installed after it
    prices the model again, quick_cost included."""
    from genai_prices import data_snapshot

    usage = TokenUsage(1000, 100)
    assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(0.0035)
    data_snapshot.set_custom_snapshot(_table_with("openai", "gpt-4o", _price(5, 20)))
    data_snapshot.set_custom_snapshot(_table_with("openai", "gpt-4o", None))
    try:
        assert cost_usd("openai", ("gpt-4o",), usage, WHEN) is None
    finally:
        data_snapshot.set_custom_snapshot(None)
    for _ in range(2):
        assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(0.0035)
    assert _quick("openai", ("gpt-4o",), usage) == pytest.approx(0.0035)


def test_a_table_installed_while_rates_are_read_leaves_no_stale_price(monkeypatch: pytest.MonkeyPatch) -> None:
    """The application installs a new price table while the export worker reads a price's rates off the one the call
    was priced in: every rate is read off that first table (the call's cost is its price), and they are remembered for
    it only: the calls after the switch get the new table's price, quick_cost included."""
    from genai_prices import data_snapshot

    models = ("claude-sonnet-4-5",)  # $3 / $15 per million below 200k input tokens
    cost_usd("anthropic", models, TokenUsage(1000, 100), WHEN)  # (its price found, remembered: time-independent)
    _cost._rates.clear()  # (the next call reads the rates again: that is when the table is replaced)
    new_table = _table_with("anthropic", "claude-sonnet-4-5", _price(5, 20))
    calc = data_snapshot.DataSnapshot.calc

    def replacing(self: Any, *args: Any, **kwargs: Any) -> Any:  # genai-prices computing, as the table changes
        data_snapshot.set_custom_snapshot(new_table)
        return calc(self, *args, **kwargs)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "calc", replacing)
    usage = TokenUsage(2000, 300)
    try:
        assert cost_usd("anthropic", models, usage, WHEN) == pytest.approx((2000 * 3 + 300 * 15) / 1e6)
        monkeypatch.setattr(data_snapshot.DataSnapshot, "calc", calc)
        assert _quick("anthropic", models, usage) is _cost.MISS
        for _ in range(2):
            assert cost_usd("anthropic", models, usage, WHEN) == pytest.approx((2000 * 5 + 300 * 20) / 1e6)
        assert _quick("anthropic", models, usage) == pytest.approx((2000 * 5 + 300 * 20) / 1e6)
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_a_model_whose_price_changed_on_a_date_is_priced_at_each_call_s_date() -> None:
    """A call after the date a model's price changed, then one before it: each gets the price of its own day (a
    model's price is remembered only when it does not depend on the call's time)."""
    import genai_prices
    from genai_prices import data_snapshot

    changed = [
        (provider.id, model.id, conditional.constraint.start_date)
        for provider in data_snapshot.get_snapshot().providers
        if provider.id in ("openai", "anthropic")
        for model in provider.models
        if isinstance(model.prices, list)
        for conditional in model.prices
        if isinstance(getattr(conditional.constraint, "start_date", None), datetime.date)
    ]
    assert changed  # (claude-sonnet-4-6's long-context tier, ended on 2026-03-13, in genai-prices 0.2.5)
    provider, model, start = changed[0]
    usage = TokenUsage(300_000, 1000)
    costs = []
    for day in (start + datetime.timedelta(days=1), start - datetime.timedelta(days=1)):
        when = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
        expected = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=usage.input, output_tokens=usage.output),
            model,
            provider_id=provider,
            genai_request_timestamp=when,
        ).total_price
        costs.append(cost_usd(provider, (model,), usage, when))
        assert costs[-1] == float(expected)
    assert costs[0] != costs[1]


def test_ever_new_model_names_leave_genai_prices_lookup_caches_bounded() -> None:
    """A long-running service pricing calls of ever new model names (fine-tuned ids, deployment names, what a
    gateway's users ask for): genai-prices caches every name it is asked about and never evicts (~100-350 bytes a
    name, found in review); carrot keeps those caches within the bound of its own. Known names still resolve after."""
    genai_prices = _cost.load_genai_prices()
    assert genai_prices is not None
    snapshot = genai_prices.data_snapshot.get_snapshot()
    for index in range(_cost._MAX_CACHED + 500):
        assert cost_usd("openai", (f"ft:gpt-4o-mini:acme::{index}",), TokenUsage(10, 5), WHEN) is None
    sizes = {name: len(getattr(snapshot, name)) for name in _cost._LIBRARY_CACHES}
    assert max(sizes.values()) <= _cost._MAX_CACHED, sizes
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(1000, 100), WHEN) == pytest.approx(0.0035)


def test_unknown_provider_is_not_guessed_from_the_model_name() -> None:
    assert cost_usd("my-local-server", ("gpt-4o",), TokenUsage(1000, 100), WHEN) is None


def test_without_provider_the_model_name_finds_it() -> None:
    assert cost_usd(None, ("claude-3-5-sonnet-20241022",), TokenUsage(1000, 100), WHEN) == pytest.approx(0.0045)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("azure.ai.openai", "gpt-4o"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("gcp.gen_ai", "gemini-2.0-flash"),
        ("gcp.vertex_ai", "gemini-2.0-flash"),
        ("x_ai", "grok-3"),
        ("mistral_ai", "mistral-large-latest"),
    ],
)
def test_genai_convention_provider_names_are_understood(provider: str, model: str) -> None:
    assert cost_usd(provider, (model,), TokenUsage(1000, 100), WHEN) is not None


def _table_cost(provider: str, model: str, usage: TokenUsage) -> float:
    import genai_prices

    return float(
        genai_prices.calc_price(
            genai_prices.Usage(input_tokens=usage.input, output_tokens=usage.output),
            model,
            provider_id=provider,
            genai_request_timestamp=WHEN,
        ).total_price
    )


@pytest.mark.parametrize(
    ("provider", "server", "model", "priced_as"),
    [
        ("openai", "api.openai.com", "gpt-4o", "openai"),
        ("openai", "my-resource.openai.azure.com", "gpt-4o-2024-08-06", "azure"),
        ("openai", "api.groq.com", "llama-3.3-70b-versatile", "groq"),
        ("anthropic", "api.anthropic.com", "claude-sonnet-4-6", "anthropic"),
    ],
)
def test_an_sdk_call_sent_to_another_host_is_priced_as_that_hosts_provider(
    provider: str, server: str, model: str, priced_as: str
) -> None:
    usage = TokenUsage(1000, 100)
    assert cost_usd(provider, (model,), usage, WHEN, server) == _table_cost(priced_as, model, usage)


def test_a_host_is_placed_by_the_table_in_force() -> None:
    """Which provider a host belongs to is the table's answer: a table installed later that places a host no earlier
    table knew prices its calls (and the one after it, without the host, does not)."""
    import dataclasses

    from genai_prices import data_snapshot

    usage, model, host = TokenUsage(1000, 100), ("llama-3.3-70b-versatile",), "groq.example.test"
    assert cost_usd("openai", model, usage, WHEN, host) is None  # (no provider's API at that host)
    providers = [
        dataclasses.replace(provider, api_pattern=r"https://(api\.groq\.com|groq\.example\.test)")
        if provider.id == "groq"
        else provider
        for provider in data_snapshot.get_snapshot().providers
    ]
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=providers, from_auto_update=False))
    try:
        assert cost_usd("openai", model, usage, WHEN, host) == _table_cost("groq", model[0], usage)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert cost_usd("openai", model, usage, WHEN, host) is None


@pytest.mark.parametrize("server", ["127.0.0.1", "localhost", "llm-gateway.internal", "ollama"])
@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-6")])
def test_an_sdk_call_to_a_local_or_unknown_server_has_no_table_price(provider: str, model: str, server: str) -> None:
    """A local model served under an OpenAI name is not billed at OpenAI's prices; the user's own prices still are."""
    assert cost_usd(provider, (model,), TokenUsage(1000, 100), WHEN, server) is None
    _cost.set_price_overrides({model: {"input": 1, "output": 1}})
    assert cost_usd(provider, (model,), TokenUsage(1000, 100), WHEN, server) == pytest.approx(0.0011)


def test_a_wrapped_openai_client_pointed_at_a_local_server_gets_no_openai_price(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    import openai

    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as fake, carrot_session(ingest, tracer_provider):
        client = carrot_ai.wrap(openai.OpenAI(base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=0))
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        client.close()
        [record] = records_after_flush(ingest, 1)
    assert record["metadata"]["model"] and record["metadata"]["input_tokens"] > 0
    assert "cost_usd" not in record["metadata"]


def test_a_foreign_span_of_a_call_to_a_local_server_gets_no_openai_price(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with carrot_session(ingest, tracer_provider):
        for server in ("localhost", "api.openai.com"):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attributes(
                    {
                        semconv.GEN_AI_OPERATION_NAME: "chat",
                        semconv.GEN_AI_PROVIDER_NAME: "openai",
                        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                        semconv.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                        semconv.SERVER_ADDRESS: server,
                        semconv.CARROT_NAME: server,
                    }
                )
        records_after_flush(ingest, 2)
        assert "cost_usd" not in ingest.by_name("localhost")["metadata"]
        assert ingest.by_name("api.openai.com")["metadata"]["cost_usd"] == pytest.approx(0.0035)


def test_usage_that_breaks_the_token_convention_has_no_cost() -> None:
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(10, 100, cache_read=20), WHEN) is None
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(10, 100, reasoning=200), WHEN) is None


def test_price_of_the_day_of_the_call_is_used() -> None:
    model, provider = "deepseek/deepseek-v4.1-flash", "arcee"
    before = cost_usd(
        provider, (model,), TokenUsage(0, 1_000_000), datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
    )
    after = cost_usd(
        provider, (model,), TokenUsage(0, 1_000_000), datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    )
    from genai_prices import data_snapshot

    found = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    if before is None or not isinstance(found[1].prices, list):  # genai-prices 0.1.x (the newest on Python 3.10)
        pytest.skip("the installed genai-prices has no dated price for this model")
    assert (before, after) == (pytest.approx(0.66), pytest.approx(1.2))


def test_prices_are_computed_offline_without_any_network_access() -> None:
    """In a fresh interpreter where every non-loopback connection fails, cost still comes out; nothing dialled out."""
    script = """
import datetime, socket, json
attempts = []
real_connect = socket.socket.connect
def connect(self, address):
    attempts.append(repr(address))
    raise OSError("network disabled by the test")
socket.socket.connect = connect
real_getaddrinfo = socket.getaddrinfo
def getaddrinfo(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by the test")
socket.getaddrinfo = getaddrinfo
from carrot_ai.export._cost import TokenUsage, cost_usd
when = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
costs = [cost_usd("openai", ("gpt-4o",), TokenUsage(1000, 100), when) for _ in range(3)]
import threading
print(json.dumps({"costs": costs, "attempts": attempts, "threads": [t.name for t in threading.enumerate()]}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["costs"] == [pytest.approx(0.0035)] * 3
    assert result["attempts"] == []
    assert result["threads"] == ["MainThread"]  # no price updater running


# --- user prices -------------------------------------------------------------------------------------------------


def test_user_prices_cover_cache_and_reasoning_parts() -> None:
    _cost.set_price_overrides(
        {"acme-large": {"input": 1.0, "output": 4.0, "cache_read": 0.1, "cache_write": 2.0, "reasoning": 8.0}}
    )
    usage = TokenUsage(input=1000, output=500, cache_read=300, cache_write=200, reasoning=100)
    expected = (500 * 1.0 + 300 * 0.1 + 200 * 2.0 + 400 * 4.0 + 100 * 8.0) / 1e6
    assert cost_usd(None, ("ACME-Large",), usage, WHEN) == pytest.approx(expected)


def test_user_prices_default_cache_and_reasoning_to_input_and_output_rates() -> None:
    _cost.set_price_overrides({"acme": {"input": 1, "output": 2}})
    usage = TokenUsage(input=1000, output=500, cache_read=300, reasoning=100)
    assert cost_usd(None, ("acme",), usage, WHEN) == pytest.approx((1000 * 1 + 500 * 2) / 1e6)


def test_user_prices_bill_audio_at_their_audio_rates_or_else_at_input_and_output() -> None:
    _cost.set_price_overrides(
        {
            "talk": {"input": 1, "output": 2},
            "talk-priced": {"input": 1, "output": 2, "input_audio": 10, "output_audio": 20},
        }
    )
    usage = TokenUsage(input=1000, output=500, cache_read=100, reasoning=50, input_audio=300, output_audio=200)
    assert cost_usd(None, ("talk",), usage, WHEN) == pytest.approx((1000 * 1 + 500 * 2) / 1e6)
    assert cost_usd(None, ("talk-priced",), usage, WHEN) == pytest.approx(
        (700 * 1 + 300 * 10 + 300 * 2 + 200 * 20) / 1e6
    )


def test_user_prices_override_the_price_table_and_can_target_one_provider() -> None:
    _cost.set_price_overrides({"gpt-4o": {"input": 1, "output": 1}, "azure/gpt-4o": {"input": 2, "output": 2}})
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(1000, 0), WHEN) == pytest.approx(0.001)
    assert cost_usd("azure", ("gpt-4o",), TokenUsage(1000, 0), WHEN) == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"m": {"input": 1}}, r"prices\['m'\]\['output'\]: missing"),
        ({"m": {"input": -1, "output": 1}}, r"prices\['m'\]\['input'\]: must not be negative"),
        ({"m": {"input": "1", "output": 1}}, r"prices\['m'\]\['input'\]: must be a number"),
        ({"m": {"input": float("nan"), "output": 1}}, r"prices\['m'\]\['input'\]: must be a number"),
        ({"m": {"input": 1, "output": 1, "audio": 3}}, r"prices\['m'\]: unknown price"),
        ({"m": 3.0}, r"prices\['m'\]: must be a mapping"),
        ({"": {"input": 1, "output": 1}}, r"prices\[''\]: the model name"),
        ([("m", 1)], r"prices: must be a mapping"),
    ],
)
def test_invalid_user_prices_are_a_value_error_from_init(
    ingest: IngestServer, tracer_provider: TracerProvider, prices: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        carrot_ai.init(api_key="k", base_url=ingest.base_url, tracer_provider=tracer_provider, prices=prices)
    carrot_ai.shutdown()


# --- end to end --------------------------------------------------------------------------------------------------


def test_llm_records_carry_cost_and_unknown_models_carry_none(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider, prices={"acme-large": {"input": 1.0, "output": 2.0}}):
        carrot_ai.capture_llm_call(_llm_event("gpt-4o", {"input_tokens": 1000, "output_tokens": 100}, name="known"))
        carrot_ai.capture_llm_call(
            _llm_event("acme-large", {"input_tokens": 1000, "output_tokens": 100}, provider=None, name="custom")
        )
        carrot_ai.capture_llm_call(
            _llm_event("mystery-model-9", {"input_tokens": 1000, "output_tokens": 100}, name="unknown")
        )
        carrot_ai.capture_llm_call(_llm_event("gpt-4o", None, name="no-usage"))
        records_after_flush(ingest, 4)
        assert ingest.by_name("known")["metadata"]["cost_usd"] == pytest.approx(0.0035)
        assert ingest.by_name("custom")["metadata"]["cost_usd"] == pytest.approx(0.0012)
        assert "cost_usd" not in ingest.by_name("unknown")["metadata"]
        assert "cost_usd" not in ingest.by_name("no-usage")["metadata"]


def test_cached_and_reasoning_usage_flow_into_record_and_cost(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    usage = {
        "input_tokens": 1000,
        "input_token_details": {"uncached_tokens": 200, "cache_read_tokens": 800, "cache_write_tokens": 0},
        "output_tokens": 100,
        "output_token_details": {"reasoning_tokens": 40, "response_tokens": 60},
        "total_tokens": 1100,
    }
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(_llm_event("gpt-4o", usage))
        [record] = records_after_flush(ingest, 1)
        metadata = record["metadata"]
        assert {k: metadata[k] for k in ("input_tokens", "output_tokens", "total_tokens")} == {
            "input_tokens": 1000,
            "output_tokens": 100,
            "total_tokens": 1100,
        }
        assert metadata["cache_read_input_tokens"] == 800
        assert metadata["cache_write_input_tokens"] == 0
        assert metadata["reasoning_tokens"] == 40
        assert metadata["cost_usd"] == pytest.approx((200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6)


def test_foreign_genai_spans_get_a_cost_too(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with carrot_session(ingest, tracer_provider):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes(
                {
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                }
            )
        [record] = records_after_flush(ingest, 1)
        assert record["metadata"]["cost_usd"] == pytest.approx(0.0035)


def test_explicit_cost_attribute_is_kept(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    tracer = tracer_provider.get_tracer("some.gateway")
    with carrot_session(ingest, tracer_provider):
        with tracer.start_as_current_span("chat") as span:
            span.set_attributes(
                {
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                    semconv.CARROT_COST_USD: 0.5,
                }
            )
        [record] = records_after_flush(ingest, 1)
        assert record["metadata"]["cost_usd"] == 0.5


def test_records_of_one_model_get_its_price_each_with_its_own_counts(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    """Records of the same model one after the other (the later ones priced by quick_cost): each its own usage's cost;
    one with audio tokens (which quick_cost leaves to genai-prices) at the audio rates."""
    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    usages = [(1000, 100, 0), (2000, 300, 0), (1000, 500, 600), (3000, 50, 0)]
    with carrot_session(ingest, tracer_provider):
        for input_tokens, output_tokens, audio in usages:
            with tracer.start_as_current_span("chat gpt-audio") as span:
                span.set_attributes(
                    {
                        semconv.GEN_AI_OPERATION_NAME: "chat",
                        semconv.GEN_AI_PROVIDER_NAME: "openai",
                        semconv.GEN_AI_REQUEST_MODEL: "gpt-audio",
                        semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
                    }
                )
                if audio:
                    span.set_attribute(semconv.OPENAI_USAGE_INPUT_AUDIO_TOKENS, audio)
        records = records_after_flush(ingest, len(usages))
    costs = [record["metadata"]["cost_usd"] for record in records]
    # gpt-audio: $2.5 / $10 per million text tokens, $32 per million input audio tokens
    assert costs == pytest.approx([0.0035, 0.008, (400 * 2.5 + 600 * 32 + 500 * 10) / 1e6, 0.008])


# --- rates read off genai-prices (costs of usages it has not priced before) --------------------------------------


def _genai_prices_cost(provider: str, model: str, usage: TokenUsage, when: datetime.datetime) -> float | None:
    """What genai-prices itself says, as cost_usd reports it (written out, not ``_cost._calc``: the oracle shares no
    code with what it checks)."""
    import genai_prices

    try:
        total = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=usage.input,
                output_tokens=usage.output,
                cache_read_tokens=usage.cache_read,
                cache_write_tokens=usage.cache_write,
                output_reasoning_tokens=usage.reasoning,
            ),
            model,
            provider_id=provider,
            genai_request_timestamp=when,
        ).total_price
    except (LookupError, ValueError):
        return None
    return float(total) if total >= 0 else None


def _usages(thresholds: list[int], seed: int) -> list[TokenUsage]:
    import random

    rng = random.Random(seed)
    inputs = [0, 1, 2, 17, rng.randint(3, 5_000), rng.randint(5_000, 150_000), rng.randint(1, 3_000_000)]
    for threshold in thresholds:  # both sides of every tier threshold ("more than start" takes the tier)
        inputs += [threshold - 1, threshold, threshold + 1, threshold + rng.randint(2, 50_000)]
    usages = []
    for total_input in inputs:
        total_input = max(total_input, 0)
        usages.append(_with_parts(rng, total_input, rng.choice([0, 1, rng.randint(2, 4_000)])))
    return usages


def _with_parts(rng: Any, total_input: int, output: int) -> TokenUsage:
    """A usage of ``total_input`` input and ``output`` output tokens, with cache and reasoning parts (or none) drawn
    from ``rng``."""
    cache_read = rng.randint(0, total_input) if rng.random() < 0.6 else 0
    cache_write = rng.randint(0, total_input - cache_read) if rng.random() < 0.4 else 0
    reasoning = rng.randint(0, output) if rng.random() < 0.4 else 0
    return TokenUsage(total_input, output, cache_read, cache_write, reasoning)


def test_costs_of_new_usages_are_exactly_genai_prices_own_for_every_model_in_its_table() -> None:
    """Every provider and model of the installed price table, at dates on both sides of price changes, with usages
    on both sides of every tier threshold and with cache and reasoning parts: cost_usd (rates read off genai-prices
    once per price and tier region) gives exactly the float genai-prices gives, or None where it gives none."""
    genai_prices = _cost.load_genai_prices()
    assert genai_prices is not None
    tiered = getattr(genai_prices.types, "TieredPrices", None)
    snapshot = genai_prices.data_snapshot.get_snapshot()
    checked = priced = 0
    for when in (WHEN, datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)):
        for provider in snapshot.providers:
            for index, model in enumerate(provider.models):
                try:
                    price = model.get_prices(when)
                    fields = vars(price).values()
                except Exception:
                    continue
                thresholds = sorted(
                    {t.start for v in fields if tiered is not None and isinstance(v, tiered) for t in v.tiers}
                )
                for usage in _usages(thresholds, seed=index):
                    expected = _genai_prices_cost(provider.id, model.id, usage, when)
                    assert cost_usd(provider.id, (model.id,), usage, when) == expected, (provider.id, model.id, usage)
                    checked += 1
                    priced += expected is not None
    assert checked > 10_000 and priced > checked // 2  # (the table was read, and most usages were priced)
    assert _cost._rates and sum(r is not None for r in _cost._rates.values()) > len(_cost._rates) // 2


def test_a_price_carrot_cannot_read_as_rates_is_left_to_genai_prices() -> None:
    from types import SimpleNamespace

    genai_prices = _cost.load_genai_prices()
    tiered = genai_prices.types.TieredPrices
    tier = genai_prices.types.Tier
    plain = SimpleNamespace(input_mtok=Decimal(3), output_mtok=Decimal(15), cache_read_mtok=None)
    assert _cost._tier_thresholds(genai_prices, plain) == ()
    two_tiers = SimpleNamespace(
        input_mtok=tiered(base=Decimal(3), tiers=[tier(start=200_000, price=Decimal(6))]),
        output_mtok=tiered(base=Decimal(15), tiers=[tier(start=128_000, price=Decimal(20))]),
    )
    assert _cost._tier_thresholds(genai_prices, two_tiers) == (128_000, 200_000)
    assert _cost._tier_thresholds(genai_prices, SimpleNamespace(input_mtok=Decimal(1), other=object())) is None
    assert _cost._tier_thresholds(genai_prices, object()) is None


# --- quick_cost: the calls of a provider, models and host priced before, without the lookups ----------------------


def _quick(provider: str, models: tuple[str, ...], usage: TokenUsage, server: str | None = None) -> Any:
    return _cost.quick_cost(provider, models, server, usage.input, usage.output, usage.cache_read, usage.cache_write,
                            usage.reasoning)  # fmt: skip


def test_quick_costs_are_exactly_genai_prices_own_for_every_model_priced_twice_before() -> None:
    """Every model of the table whose price does not depend on the date, asked twice (the first call finds its price,
    the second remembers it for quick_cost), then new usages on both sides of every tier threshold: quick_cost gives
    exactly genai-prices' float, or MISS (a tier region not priced yet); most are answered."""
    genai_prices = _cost.load_genai_prices()
    tiered = genai_prices.types.TieredPrices
    answered = checked = 0
    for provider in genai_prices.data_snapshot.get_snapshot().providers:
        for index, model in enumerate(provider.models):
            if not isinstance(model.prices, genai_prices.types.ModelPrice):
                continue  # (prices in force from a date: never quick)
            models = (model.id,)
            if cost_usd(provider.id, models, TokenUsage(10, 1), WHEN) is None:
                continue
            cost_usd(provider.id, models, TokenUsage(10, 1), WHEN)
            thresholds = sorted(
                {t.start for v in vars(model.prices).values() if isinstance(v, tiered) for t in v.tiers}
            )
            for usage in _usages(thresholds, seed=index):
                quick = _quick(provider.id, models, usage)
                checked += 1
                if quick is _cost.MISS:
                    assert cost_usd(provider.id, models, usage, WHEN) == _genai_prices_cost(
                        provider.id, model.id, usage, WHEN
                    )
                    continue
                answered += 1
                assert quick == _genai_prices_cost(provider.id, model.id, usage, WHEN), (provider.id, model.id, usage)
    assert checked > 3_000 and answered > checked * 3 // 4


def test_quick_cost_answers_only_for_what_was_priced_as_it_is_asked() -> None:
    usage = TokenUsage(1000, 100, 200)
    for _ in range(2):
        cost_usd("openai", ("gpt-4o",), usage, WHEN)
    assert _quick("openai", ("gpt-4o",), usage) == pytest.approx(0.00325)
    assert _quick("openai", ("gpt-4o", "gpt-4o-mini"), usage) is _cost.MISS  # other models
    assert _quick("OpenAI", ("gpt-4o",), usage) is _cost.MISS  # another provider name
    assert _quick("openai", ("gpt-4o",), usage, "localhost") is _cost.MISS  # another host
    assert _quick("openai", ("gpt-4o",), TokenUsage(100, 10, 80, 30)) is None  # cache parts beyond the input
    assert _quick("openai", ("gpt-4o",), TokenUsage(100, 10, reasoning=11)) is None  # as cost_usd answers them
    assert cost_usd("openai", ("gpt-4o",), TokenUsage(100, 10, 80, 30), WHEN) is None


def test_user_prices_installed_later_are_not_bypassed_by_quick_cost() -> None:
    usage = TokenUsage(1_000_000, 0)
    for _ in range(2):
        assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(2.5)
    assert _quick("openai", ("gpt-4o",), usage) == pytest.approx(2.5)
    _cost.set_price_overrides({"gpt-4o": {"input": 1, "output": 2}})
    assert _quick("openai", ("gpt-4o",), usage) is _cost.MISS
    assert cost_usd("openai", ("gpt-4o",), usage, WHEN) == pytest.approx(1.0)


def test_a_price_table_installed_later_is_not_bypassed_by_quick_cost() -> None:
    from genai_prices import data_snapshot

    usage = TokenUsage(1000, 100)
    for _ in range(2):
        cost_usd("openai", ("gpt-4o",), usage, WHEN)
    assert _quick("openai", ("gpt-4o",), usage) == pytest.approx(0.0035)
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=data_snapshot.get_snapshot().providers, from_auto_update=False)
    )
    try:
        assert _quick("openai", ("gpt-4o",), usage) is _cost.MISS
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert _quick("openai", ("gpt-4o",), usage) == pytest.approx(0.0035)


# --- the rates' integer form (the same floats as their Decimal sums) ----------------------------------------------


def _decimal_cost_usd(rates: Any, usage: TokenUsage) -> float | None:
    """What cost_usd reported from rates before their integer form: the Decimal sum as a float, None if negative."""
    total = rates.cost(usage)
    return float(total) if total >= 0 else None


def _valid_usages(rng: Any, count: int, largest: int) -> list[TokenUsage]:
    usages = []
    for _ in range(count):
        total_input = rng.choice([0, 1, rng.randint(2, 5_000), rng.randint(0, largest)])
        output = rng.choice([0, 1, rng.randint(2, 5_000), rng.randint(0, largest)])
        usages.append(_with_parts(rng, total_input, output))
    return usages


def test_integer_costs_are_the_decimal_costs_for_every_price_in_the_table() -> None:
    import random

    genai_prices = _cost.load_genai_prices()
    snapshot = genai_prices.data_snapshot.get_snapshot()
    for provider in snapshot.providers:
        for model in provider.models:
            for total_input in (1_000, 300_000, 2_000_000):  # (the tier regions of most tiered prices)
                cost_usd(provider.id, (model.id,), TokenUsage(total_input, 10), WHEN)
    fitted = [rates for rates in _cost._rates.values() if rates is not None]
    assert len(fitted) > 100 and all(rates.scaled is not None for rates in fitted)
    rng = random.Random(9)
    for rates in fitted:
        for usage in _valid_usages(rng, 60, 10**12):
            assert repr(rates.cost_usd(usage)) == repr(_decimal_cost_usd(rates, usage)), (rates, usage)


def test_integer_costs_are_the_decimal_costs_for_rates_of_many_digits() -> None:
    """Rates of up to 12 digits at exponents down to -12, negative rates (a cache read costs less than the input
    token it is part of), and usages at and beyond the token limit up to which Decimal's sum is exact."""
    import decimal
    import random

    rng = random.Random(33)

    def rate(sign: int = 0) -> Decimal:
        return Decimal((sign, tuple(rng.randint(0, 9) for _ in range(rng.randint(1, 12))), -rng.randint(0, 12)))

    for _ in range(300):
        rates = _cost._scaled(_cost._Rates(rate(), rate(), rate(), rate(rng.randint(0, 1)), rate(), rate()))
        assert rates.scaled is not None and rates.token_limit > 0
        limit = rates.token_limit
        usages = _valid_usages(rng, 30, 10**9)
        usages += [
            TokenUsage(limit // 2, limit - limit // 2, limit // 2),
            TokenUsage(limit + 1, 0),
            TokenUsage(0, limit + 1),
        ]
        for usage in usages:
            assert repr(rates.cost_usd(usage)) == repr(_decimal_cost_usd(rates, usage)), (rates, usage)
        # Up to the limit, the Decimal sum is exact (the integers' premise), even at the worst split of the tokens.
        with decimal.localcontext() as context:
            context.traps[decimal.Inexact] = True
            rates.cost(TokenUsage(limit // 2, limit - limit // 2, limit // 2, 0, limit - limit // 2))
            rates.cost(TokenUsage(limit // 2, limit - limit // 2, 0, limit // 2, 0))


def test_rates_the_integers_could_get_wrong_stay_in_decimal() -> None:
    import decimal

    one = Decimal("0.000003")
    assert _cost._scaled(_cost._Rates(Decimal(0), one, one, -one, one, one)).scaled == (0, 3, 3, -3, 3, 3)
    for base in (Decimal(-1), Decimal("-0"), Decimal("NaN"), Decimal("1E-40")):
        assert _cost._scaled(_cost._Rates(base, one, one, one, one, one)).scaled is None, base
    with decimal.localcontext() as context:
        context.prec = 20
        assert _cost._scaled(_cost._Rates(Decimal(0), one, one, one, one, one)).scaled is None


def test_usage_validity_is_the_bounds_of_every_count() -> None:
    """``valid()`` says what ``min(counts) >= 0`` and the parts within their wholes said, for every usage of small
    counts (-1 to 1 each), random ones, valid ones with a count one off, and floats with NaN and infinities."""
    import itertools
    import math
    import random

    def bounded(usage: TokenUsage) -> bool:
        return (
            min(usage) >= 0
            and usage.cache_read + usage.cache_write <= usage.input
            and usage.reasoning <= usage.output
            and usage.cache_write_1h <= usage.cache_write
            and usage.input_audio <= usage.input
            and usage.output_audio <= usage.output
        )

    usages = [TokenUsage(*counts) for counts in itertools.product((-1, 0, 1), repeat=8)]
    rng = random.Random(5)
    usages += [TokenUsage(*(rng.randint(-3, 40) for _ in range(8))) for _ in range(20_000)]
    odd = (0.0, 1.5, -0.5, math.nan, math.inf, -math.inf)
    usages += [TokenUsage(*(rng.choice(odd) for _ in range(8))) for _ in range(20_000)]  # type: ignore[arg-type]
    for usage in _valid_usages(rng, 2_000, 10**6):  # valid ones, and each of their counts one off either way
        usages += [
            usage._replace(**{field: getattr(usage, field) + step}) for field in usage._fields for step in (-1, 1)
        ]
    assert sum(map(bounded, usages)) > 1_000
    for usage in usages:
        assert usage.valid() is bounded(usage), usage
