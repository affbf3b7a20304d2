"""The cost of one LLM call in USD, from its token usage, provider and model: ``metadata.cost_usd``.

Prices come from the user's overrides (``init(prices=...)``) first, then from ``genai-prices`` (installed with the
``openai``, ``anthropic`` and ``litellm`` extras), using only the price table bundled in that package: nothing is
fetched at run time (its ``UpdatePrices`` background updater is never started). The price in force on the day of
the call is used, so a record's cost never depends on when it was exported. A model neither source knows, or a
call without token counts, gets no cost at all (absent, not zero).

Token convention (the trace record's): ``input`` includes cache reads and cache writes; ``reasoning`` is part of
``output``; audio tokens (``input_audio`` / ``output_audio``) are part of ``input`` / ``output``. Each part is billed
at its own rate where the model has one, else at the input / output rate.

This runs on the exporter's worker thread, never on the application's. genai-prices resolves a model in about a
microsecond (it caches the lookup) but then spends ~80-100 µs decomposing the usage into priced units, and calls'
usages rarely repeat. Its result is exact and affine in the five token counts between two tier thresholds, so for
each price in force (the object genai-prices selects for the call's time) and tier region carrot reads the rates off
genai-prices' own results at a few usages, checks them at another, and computes ``base + Σ tokens x rate`` (in
integers, else ``Decimal``): the value genai-prices would compute, in ~2 µs (:func:`_rates_in_force`); a call like
one priced before (same provider, models and host, a price that does not depend on the date, the same table, no user
prices) in ~1 µs, without the lookups (:func:`quick_cost`). Prices it cannot read that way are computed by
genai-prices and memoized per (provider, model, price in force, usage).
"""

from __future__ import annotations

import bisect
import datetime
import decimal
import enum
import logging
import math
import os
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

logger = logging.getLogger("carrot_ai")

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning", "input_audio", "output_audio")
_MILLION = Decimal(1_000_000)
# GenAI-convention provider names genai-prices does not resolve by itself.
_PROVIDER_ALIASES = {
    "x_ai": "x-ai",
    "gcp.gen_ai": "google",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
}
# The providers whose SDKs take a base URL, with the host of their own API. A call such an SDK sent to another host
# (``OpenAI(base_url=...)``: Azure, Groq, a local server, a proxy) is priced as the provider that host belongs to in
# genai-prices' table (matched by its API URL patterns); a host it does not know gets no price from the table, never
# the SDK's provider's: a local model named ``gpt-4o`` costs nothing at OpenAI's prices.
_SDK_API_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
_NO_PROVIDER = ""  # what _provider_at maps a host genai-prices does not know to
_MAX_CACHED = 10_000
_FORK_WAIT = 10.0  # seconds a fork waits for genai-prices to finish loading


# genai-prices is loaded once, with its price table (~170 ms; seconds when the application keeps the GIL busy), by the
# export worker as it starts (load_genai_prices). A process forked in the middle would deadlock on its own first
# ``import genai_prices``: the module's import lock belongs to a thread the child does not have. So a fork waits
# (bounded) until the load is done. None: not tried yet; False: not installed.
_genai_prices: Any = None
_loading = threading.Lock()
_fork_holds_loading = False


def _before_fork() -> None:
    global _fork_holds_loading
    _fork_holds_loading = _loading.acquire(timeout=_FORK_WAIT)


def _after_fork_in_parent() -> None:
    global _fork_holds_loading
    if _fork_holds_loading:
        _fork_holds_loading = False
        _loading.release()


def _after_fork_in_child() -> None:
    global _fork_holds_loading, _loading, _genai_prices
    if _fork_holds_loading:
        _fork_holds_loading = False
        _loading.release()
    else:  # the parent was still loading it after _FORK_WAIT: this process never touches it (no cost, no hang)
        _loading = threading.Lock()
        if _genai_prices is None:
            _genai_prices = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def load_genai_prices() -> Any:
    """The ``genai_prices`` module with its bundled price table loaded, or None when it is not installed."""
    global _genai_prices
    module = _genai_prices
    if module is None:
        with _loading:
            module = _genai_prices
            if module is None:
                try:
                    import genai_prices

                    genai_prices.data_snapshot.get_snapshot()  # imports the table (genai_prices.data), 1.6 MB
                    module = genai_prices
                except ImportError:
                    module = False
                _genai_prices = module
    return module or None


class TokenUsage(NamedTuple):
    """Token counts of one call, in the trace record's convention (cache parts of input, reasoning part of output).

    ``cache_write_1h`` is the part of ``cache_write`` written with a 1-hour TTL (Anthropic bills it at 2x the input
    rate, a 5-minute write at 1.25x), so it is priced at its own rate where genai-prices has one. ``input_audio`` /
    ``output_audio`` are the audio part of ``input`` / ``output`` (OpenAI's ``prompt_tokens_details.audio_tokens``
    / ``completion_tokens_details.audio_tokens``): an audio model bills them at several times its text rates. They
    may overlap the cache and reasoning parts (a cached audio token is both), so they are only bounded by the whole."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0
    input_audio: int = 0
    output_audio: int = 0

    def valid(self) -> bool:
        """Every count non-negative and every part within its whole (input and output are bounded below by parts
        checked to be non-negative: no ``min()`` over all eight, ~0.13 µs less)."""
        input, output, cache_read, cache_write, reasoning, cache_write_1h, input_audio, output_audio = self
        return (
            0 <= cache_read
            and 0 <= cache_write
            and cache_read + cache_write <= input
            and 0 <= reasoning <= output
            and 0 <= cache_write_1h <= cache_write
            and 0 <= input_audio <= input
            and 0 <= output_audio <= output
        )


class ModelPrice(NamedTuple):
    """A user's price for one model, in USD per million tokens; parts without a price use input / output.

    Audio tokens without an audio price are billed as the tokens they are part of (input / output, cache, reasoning);
    with one (``input_audio`` / ``output_audio``), an audio token is billed at it instead of the input / output rate.
    The two are kept this simple because the APIs do not say which audio tokens were cached (or reasoning)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None

    def cost(self, usage: TokenUsage) -> Decimal:
        uncached = usage.input - usage.cache_read - usage.cache_write
        total = (
            uncached * self.input
            + usage.cache_read * (self.input if self.cache_read is None else self.cache_read)
            + usage.cache_write * (self.input if self.cache_write is None else self.cache_write)
            + (usage.output - usage.reasoning) * self.output
            + usage.reasoning * (self.output if self.reasoning is None else self.reasoning)
        )
        if self.input_audio is not None:
            total += usage.input_audio * (self.input_audio - self.input)
        if self.output_audio is not None:
            total += usage.output_audio * (self.output_audio - self.output)
        return total / _MILLION


def parse_prices(prices: Mapping[str, Mapping[str, Any]] | None) -> dict[str, ModelPrice]:
    """Validate ``init(prices=...)``: ``{model: {"input": usd_per_mtok, "output": ..., ...}}``.

    Keys are model names (matched case-insensitively against the response model, then the request model), or
    ``"provider/model"`` to price a model for one provider only. Each price is USD per million tokens; ``input``
    and ``output`` are required, ``cache_read``, ``cache_write``, ``reasoning``, ``input_audio`` and ``output_audio``
    are optional. Raises
    ``ValueError`` naming the offending entry.
    """
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise ValueError(f"prices: must be a mapping of model name to prices, not {type(prices).__name__}")
    table: dict[str, ModelPrice] = {}
    for model, entry in prices.items():
        where = f"prices[{model!r}]"
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"{where}: the model name must be a non-empty string")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: must be a mapping like {{'input': 2.5, 'output': 10.0}} (USD per 1M tokens)")
        unknown = set(entry) - set(PRICE_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown price(s) {sorted(map(str, unknown))}; known: {list(PRICE_FIELDS)}")
        values: dict[str, Decimal | None] = {}
        for field in PRICE_FIELDS:
            value = entry.get(field)
            if value is None:
                if field in ("input", "output"):
                    raise ValueError(f"{where}[{field!r}]: missing (USD per million tokens)")
                values[field] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value):
                raise ValueError(f"{where}[{field!r}]: must be a number, not {value!r}")
            if value < 0:
                raise ValueError(f"{where}[{field!r}]: must not be negative, got {value!r}")
            values[field] = Decimal(str(value))
        table[model.strip().lower()] = ModelPrice(**values)  # type: ignore[arg-type]
    return table


_overrides: dict[str, ModelPrice] = {}
_unknown: set[tuple[str | None, str]] = set()
# (provider id, model id, id(price in force), usage) -> cost; the price objects of the keys are kept in _prices.
_memo: dict[tuple[Any, ...], float | None] = {}
_prices: dict[int, Any] = {}
_lock = threading.Lock()
_genai_missing_logged = False


def set_price_overrides(prices: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Install the user's prices (validated; raises ``ValueError``)."""
    global _overrides
    _overrides = parse_prices(prices)


def cost_usd(
    provider: str | None,
    models: tuple[str, ...],
    usage: TokenUsage,
    when: datetime.datetime | int,
    server_address: str | None = None,
) -> float | None:
    """The call's cost in USD, or None when no price is known for any of ``models`` (or the usage is invalid).

    ``models`` are tried in order (the response model, then the request model). ``when``: the call's time, a
    datetime or nanoseconds since the epoch (a span's start, made a datetime only when the price needs it).
    ``server_address`` is the host the call went to (``server.address``): an OpenAI or Anthropic SDK call sent
    elsewhere than that provider's own API is priced from the table as the host's provider, or not at all (user
    prices still apply).
    """
    if not usage.valid():
        return None
    provider_key = provider.lower() if provider else None
    for model in models:
        price = _override(provider_key, model)
        if price is not None:
            own = price.cost(usage)  # (negative only with audio cheaper than text and counted as cached too)
            return float(own) if own >= 0 else None
    table_provider = provider_key
    if provider_key in _SDK_API_HOSTS and server_address and server_address.lower() != _SDK_API_HOSTS[provider_key]:
        table_provider = _provider_at(server_address.lower())
        if table_provider == _NO_PROVIDER:
            return None
    for index, model in enumerate(models):
        # (a price found for the first model tried is what later calls of the same key get: quick_cost)
        quick_key = (provider, models, server_address) if index == 0 else None
        total = _genai_cost(table_provider, model, usage, when, quick_key)
        if total is not None:
            return total
    return None


class Miss(enum.Enum):
    """:func:`quick_cost` has no answer: :func:`cost_usd` has."""

    MISS = 0


MISS = Miss.MISS
# (provider, models, server address) as cost_usd was given them -> (the price table, the price): the calls whose
# first model has a price that does not depend on the call's time, in a table carrot read rates off, when no user
# prices are installed. The entry keeps the price alive, so its id keys its rates in _rates.
_quick: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def quick_cost(
    provider: str | None,
    models: tuple[str, ...],
    server_address: str | None,
    input: int,
    output: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
) -> float | None | Miss:
    """``cost_usd(provider, models, TokenUsage(input, output, cache_read, cache_write, reasoning), when,
    server_address)``, the same value, for a call like one :func:`cost_usd` priced before (the same provider, models
    and host; a price that does not depend on ``when``; no user prices; the same price table), from the rates already
    read, without its lookups (~1.1 µs less a record): the price and its rates are the ones that call found.
    :data:`MISS` when it cannot tell (anything else, or a usage in a tier region not priced yet)."""
    entry = _quick.get((provider, models, server_address))
    if entry is None or _overrides:
        return MISS
    snapshot, price = entry
    try:
        if _genai_prices.data_snapshot.get_snapshot() is not snapshot:  # a new table
            return MISS
    except Exception:
        return MISS
    if not (0 <= cache_read and 0 <= cache_write and cache_read + cache_write <= input and 0 <= reasoning <= output):
        return None  # (as cost_usd answers an invalid usage)
    key = id(price)
    thresholds = _thresholds.get(key)
    if thresholds is None:
        return MISS
    rates = _rates.get((key, bisect.bisect_left(thresholds, input) if thresholds else 0))
    if rates is None:
        return MISS
    return rates.usd(input, output, cache_read, cache_write, reasoning)  # (what cost_usd does with these rates)


_hosts: dict[str, str] = {}


def _provider_at(host: str) -> str:
    """The genai-prices provider id whose API URL pattern ``https://{host}`` matches, or ``_NO_PROVIDER``."""
    genai_prices = load_genai_prices()
    if genai_prices is None:
        return _NO_PROVIDER
    table = _table_in_force(genai_prices)  # (a new table may place a host elsewhere)
    known = _hosts.get(host)
    if known is not None:
        return known
    try:
        provider_id = table.find_provider(None, None, f"https://{host}").id
    except LookupError:
        provider_id = _NO_PROVIDER
    except Exception as exc:  # another genai-prices version: no price rather than the wrong provider's
        _log_library_error_once(exc)
        return _NO_PROVIDER
    with _lock:
        if len(_hosts) >= _MAX_CACHED:
            _hosts.clear()
        _hosts[host] = provider_id
    return provider_id if isinstance(provider_id, str) else _NO_PROVIDER


def _override(provider: str | None, model: str) -> ModelPrice | None:
    overrides = _overrides
    if not overrides:
        return None
    key = model.lower()
    if provider is not None:
        specific = overrides.get(f"{provider}/{key}")
        if specific is not None:
            return specific
    return overrides.get(key)


def _genai_cost(
    provider: str | None,
    model: str,
    usage: TokenUsage,
    when: datetime.datetime | int,
    quick_key: tuple[Any, ...] | None = None,
) -> float | None:
    global _genai_missing_logged
    provider_id = _PROVIDER_ALIASES.get(provider, provider) if provider else None
    key = (provider_id, model)
    genai_prices = load_genai_prices()
    if genai_prices is None:
        if not _genai_missing_logged:
            _genai_missing_logged = True
            logger.info(
                "carrot_ai: genai-prices is not available (not installed, or still loading when this process was "
                "forked); records carry no cost_usd unless init(prices=...)"
            )
        return None
    table = _table_in_force(genai_prices)
    if key in _unknown:
        return None
    resolved, price = _fixed_price(table, key)
    fixed = resolved is not None
    if not fixed:
        _bound_library_caches(genai_prices)
        resolved, price = _price_in_force(genai_prices, provider_id, model, _at(when), table)
    memo_key = None
    if resolved is not None:
        # The rates read off genai-prices cover the five counts of the common case; a usage with 1-hour cache writes
        # or audio tokens is priced by genai-prices itself (memoized below): how it splits audio from cache reads
        # depends on the price (a model with a cached-audio rate wants the cached audio count), which the five
        # rates cannot express, and audio calls are few.
        rates = (
            _rates_in_force(genai_prices, provider_id, model, when, price, usage.input, table)
            if not (usage.cache_write_1h or usage.input_audio or usage.output_audio)
            else None
        )
        if rates is not None:
            if fixed and quick_key is not None:
                _remember_quick(quick_key, table, price)
            return rates.cost_usd(usage)
        memo_key = (*resolved, usage)
        if memo_key in _memo:
            return _memo.get(memo_key)
    try:
        result = _calc(genai_prices, provider_id, model, _at(when), usage, table)
    except LookupError:
        with _lock:
            if len(_unknown) >= _MAX_CACHED:
                _unknown.clear()
            _unknown.add(key)
        return None
    except ValueError:  # usage the price table cannot bill (e.g. a unit this model has no price for)
        return None
    except Exception as exc:  # a problem inside the price library is not a reason to lose the record
        _log_library_error_once(exc)
        return None
    total = result.total_price
    cost = float(total) if isinstance(total, Decimal) and total >= 0 else None
    if memo_key is not None:
        with _lock:
            if len(_memo) >= _MAX_CACHED:
                _memo.clear()
            _memo[memo_key] = cost
            _remember_price(price)  # kept alive, so that its id stays its own while it is part of a key
    return cost


# genai-prices' own lookup caches on its price table (``DataSnapshot``), keyed by the model name asked about: they
# never evict, and a model name is the application's (fine-tuned ids, deployment names, a gateway passing on what its
# users ask for). ``_provider_cache`` alone grew ~100-350 bytes for every distinct name, known to the table or not.
_LIBRARY_CACHES = ("_lookup_cache", "_provider_cache", "_provider_misses")


def _bound_library_caches(genai_prices: Any) -> None:
    """Empty any of genai-prices' lookup caches (:data:`_LIBRARY_CACHES`) past ``_MAX_CACHED`` entries, as carrot's own
    caches are, so that a process that prices calls of ever new model names does not grow for ever; it then looks
    names up again (~1 µs each). Runs on the export worker, once a priced record: three ``len()``. Never raises."""
    try:
        snapshot = genai_prices.data_snapshot.get_snapshot()
        for name in _LIBRARY_CACHES:
            cache = getattr(snapshot, name, None)
            if isinstance(cache, dict | set) and len(cache) > _MAX_CACHED:
                cache.clear()
    except Exception:  # another genai-prices version: its caches are its own business
        pass


def _calc(
    genai_prices: Any,
    provider_id: str | None,
    model: str,
    when: datetime.datetime,
    usage: TokenUsage,
    table: Any = None,
) -> Any:
    """genai-prices' price calculation for ``usage`` (raises what it raises), on the price table ``table`` (the one
    the price being read was found in, whichever the application installs meanwhile), else on the one in force."""
    counts = {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_read_tokens": usage.cache_read,
        "cache_write_tokens": usage.cache_write,
        "output_reasoning_tokens": usage.reasoning,
    }
    if usage.cache_write_1h:  # (a part of cache_write_tokens; genai-prices bills it at cache_write_1h_mtok)
        counts["cache_write_1h_tokens"] = usage.cache_write_1h
    # Parts of input_tokens / output_tokens, billed at input_audio_mtok / output_audio_mtok (else as text). A model
    # with a cached-audio rate refuses a usage with both cache reads and input audio (it wants the cached audio
    # count, which chat completions do not report): such a call gets no cost rather than a guessed one.
    if usage.input_audio:
        counts["input_audio_tokens"] = usage.input_audio
    if usage.output_audio:
        counts["output_audio_tokens"] = usage.output_audio
    calc = getattr(table, "calc", None)
    if calc is not None:  # (what genai_prices.calc_price does with the table in force)
        return calc(genai_prices.Usage(**counts), model, provider_id, None, when)
    return genai_prices.calc_price(
        genai_prices.Usage(**counts),
        model,
        provider_id=provider_id,
        genai_request_timestamp=when,
    )


class _Rates(NamedTuple):
    """A call's cost as an affine function of its usage: ``base + Σ tokens x rate`` (exact, in ``Decimal``).

    ``scaled``: the same six numbers times ``denominator`` (a power of ten), as integers, when :func:`_scaled` could
    make them so exactly; else None. ``token_limit``: the most input + output tokens for which ``Decimal`` computes
    ``cost`` exactly (every product and partial sum within the precision), so that the integers give its value."""

    base: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal
    scaled: tuple[int, int, int, int, int, int] | None = None
    denominator: int = 1
    token_limit: int = -1

    def cost(self, usage: TokenUsage) -> Decimal:
        return (
            self.base
            + usage.input * self.input
            + usage.output * self.output
            + usage.cache_read * self.cache_read
            + usage.cache_write * self.cache_write
            + usage.reasoning * self.reasoning
        )

    def cost_usd(self, usage: TokenUsage) -> float | None:
        """:meth:`usd` of ``usage``'s five counts."""
        return self.usd(usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)

    def usd(self, input: int, output: int, cache_read: int, cache_write: int, reasoning: int) -> float | None:
        """``float(self.cost(usage))`` of a valid usage of these counts, or None when that is negative; in integers
        when the rates were scaled and the usage is within ``token_limit`` (~0.5 µs less than the ``Decimal`` sum and
        its float): both compute the exact sum then, and ``int / int`` rounds it to a float correctly, as
        ``float(Decimal)`` does."""
        scaled = self.scaled
        if scaled is not None and input + output <= self.token_limit:
            base, input_rate, output_rate, cache_read_rate, cache_write_rate, reasoning_rate = scaled
            total = (
                base
                + input * input_rate
                + output * output_rate
                + cache_read * cache_read_rate
                + cache_write * cache_write_rate
                + reasoning * reasoning_rate
            )
            return total / self.denominator if total >= 0 else None
        cost = self.cost(TokenUsage(input, output, cache_read, cache_write, reasoning))
        return float(cost) if cost >= 0 else None


_EXACT_BELOW = 10**27  # integers of at most 27 digits: Decimal's default precision (28) holds them exactly
_MAX_SCALE = 30  # (rates with more decimals than this, which no price table has, stay in Decimal only)


def _scaled(rates: _Rates) -> _Rates:
    """``rates`` with their integer form (``scaled``, ``denominator``, ``token_limit``), or as they are when a rate is
    not finite, the base is negative (or ``-0``, which ``Decimal`` would carry to a ``-0.0`` cost), a rate needs more
    than ``_MAX_SCALE`` decimals, or the context here rounds differently from the default one.

    ``Decimal`` adds the products in ``cost`` exactly when every product and partial sum has at most 27 digits at the
    smallest exponent of the rates (the exponent of each such result is at least that one). For a valid usage
    (cache parts within the input, reasoning within the output) each of them is at most ``|base| + M x 2 x (input +
    output)`` in absolute value, M the largest scaled rate in absolute value: below ``_EXACT_BELOW`` up to
    ``token_limit`` input + output tokens (~10**20 for real prices)."""
    values = rates[:6]
    context = decimal.getcontext()
    if context.prec < 28 or context.rounding == decimal.ROUND_FLOOR:  # (-0 sums; a context the user set up)
        return rates
    if not all(v.is_finite() for v in values) or rates.base.is_signed():
        return rates
    scale = max(0, *(-int(v.as_tuple().exponent) for v in values))
    if scale > _MAX_SCALE:
        return rates
    base, input_rate, output_rate, cache_read_rate, cache_write_rate, reasoning_rate = (
        int(v.scaleb(scale)) for v in values
    )
    scaled = (base, input_rate, output_rate, cache_read_rate, cache_write_rate, reasoning_rate)
    if any(Decimal(n).scaleb(-scale) != v for n, v in zip(scaled, values, strict=True)):
        return rates  # (not exact: more digits than the context holds)
    largest = max(abs(n) for n in scaled[1:])
    room = _EXACT_BELOW - 1 - base
    if room < 0:
        return rates
    token_limit = room // (2 * largest) if largest else room  # (no rate: any usage costs the base)
    return rates._replace(scaled=scaled, denominator=10**scale, token_limit=token_limit)


# id(price in force) -> the input-token thresholds of its tiered prices (sorted), or None when its cost is not
# piecewise affine in the usage as far as carrot can tell; (id(price), tier region) -> its rates there, or None.
_thresholds: dict[int, tuple[int, ...] | None] = {}
_rates: dict[tuple[int, int], _Rates | None] = {}


def _rates_in_force(
    genai_prices: Any,
    provider_id: str | None,
    model: str,
    when: datetime.datetime | int,
    price: Any,
    input_tokens: int,
    table: Any = None,
) -> _Rates | None:
    """The rates of ``price`` (the price genai-prices has in force for ``model`` at ``when``, in ``table``) for a call
    with ``input_tokens``, or None when its cost is to be computed by genai-prices itself.

    genai-prices decomposes a usage into priced units (uncached input = input - cache reads - cache writes, text
    output = output - reasoning, each unit at its price or its parent's, a per-request price once) and adds
    ``price x count / per`` in ``Decimal``: exact, and affine in the five token counts, except that a tiered price
    takes the rate of the highest tier whose threshold the call's input tokens pass. Between two thresholds it is
    affine again, so its rates there are read off genai-prices' own results at a few usages in that region (a base
    usage and one more token of each kind), checked at one more usage there, and kept per price object and region:
    ``base + Σ tokens x rate`` is then exactly the value genai-prices computes (~80 µs a distinct usage; this ~1
    µs). A price with fields of any other kind, or rates the check refutes, is left to genai-prices."""
    key = id(price)
    try:
        thresholds = _thresholds[key]
    except KeyError:
        thresholds = _tier_thresholds(genai_prices, price)
        with _lock:
            _remember_price(price)
            _thresholds[key] = thresholds
    if thresholds is None:
        return None
    region = bisect.bisect_left(thresholds, input_tokens)  # how many thresholds the input passes (input > start)
    rates_key = (key, region)
    try:
        return _rates[rates_key]
    except KeyError:
        pass
    low = thresholds[region - 1] if region else 0
    high = thresholds[region] if region < len(thresholds) else None
    rates = _fit_rates(genai_prices, provider_id, model, _at(when), low, high, table)
    with _lock:
        _remember_price(price)
        _rates[rates_key] = rates
    return rates


def _at(when: datetime.datetime | int) -> datetime.datetime:
    """``when`` as a datetime: itself, or a time in nanoseconds since the epoch (UTC)."""
    if isinstance(when, datetime.datetime):
        return when
    return datetime.datetime.fromtimestamp(when / 1e9, tz=datetime.timezone.utc)


def _tier_thresholds(genai_prices: Any, price: Any) -> tuple[int, ...] | None:
    """The sorted input-token thresholds of ``price``'s tiered fields; None if any field is neither a number, absent
    nor tiered (nothing carrot can tell to be affine)."""
    tiered = getattr(genai_prices.types, "TieredPrices", None)
    starts: set[int] = set()
    try:
        fields = vars(price)
    except TypeError:
        return None
    for name, value in fields.items():
        if name.startswith("_") or value is None or isinstance(value, Decimal | int):
            continue
        if tiered is not None and isinstance(value, tiered):
            starts.update(int(tier.start) for tier in value.tiers)
            continue
        return None
    return tuple(sorted(starts))


def _fit_rates(
    genai_prices: Any,
    provider_id: str | None,
    model: str,
    when: datetime.datetime,
    low: int,
    high: int | None,
    table: Any = None,
) -> _Rates | None:
    """Rates read off genai-prices' results for usages whose input tokens lie in ``(low, high]``; None when the
    region is too narrow to read them, genai-prices refuses one of the usages, or the check at another usage fails."""
    base_input = low + 1
    if high is not None and base_input + 1 > high:
        return None

    def total(usage: TokenUsage) -> Decimal:
        value = _calc(genai_prices, provider_id, model, when, usage, table).total_price
        if not isinstance(value, Decimal):
            raise TypeError(type(value).__name__)
        return value

    try:
        at_base = total(TokenUsage(base_input, 1))
        per_input = total(TokenUsage(base_input + 1, 1)) - at_base
        per_output = total(TokenUsage(base_input, 2)) - at_base
        rates = _Rates(
            at_base - base_input * per_input - per_output,
            per_input,
            per_output,
            total(TokenUsage(base_input, 1, cache_read=1)) - at_base,
            total(TokenUsage(base_input, 1, cache_write=1)) - at_base,
            total(TokenUsage(base_input, 1, reasoning=1)) - at_base,
        )
        probe_input = base_input + 1_234_567 if high is None else (base_input + high) // 2
        probe = TokenUsage(probe_input, 777_777, probe_input // 3, probe_input // 5, 333_333)
        if rates.cost(probe) != total(probe):
            return None
    except Exception:  # genai-prices could not price one of these usages: it prices every call itself
        return None
    return _scaled(rates)


def _remember_quick(quick_key: tuple[Any, ...], table: Any, price: Any) -> None:
    """Let :func:`quick_cost` price the calls of ``quick_key`` at ``price`` while the price table is ``table``, the one
    ``price`` was found in (not the one in force by now: the application may install another meanwhile), when no user
    prices are installed."""
    if _overrides:
        return
    with _lock:
        if len(_quick) >= _MAX_CACHED:
            _quick.clear()
        _quick[quick_key] = (table, price)


def _remember_price(price: Any) -> None:
    """Keep ``price`` alive while its id is part of a key (called with ``_lock`` held)."""
    if len(_prices) >= _MAX_CACHED:
        _memo.clear()
        _prices.clear()
        _thresholds.clear()
        _rates.clear()
    _prices[id(price)] = price


def _price_in_force(
    genai_prices: Any, provider_id: str | None, model: str, when: datetime.datetime, table: Any = None
) -> tuple[tuple[Any, ...] | None, Any]:
    """What decides genai-prices' answer besides the usage: the provider and model it resolves and the price in force
    at ``when`` (the same object for every call it applies to; by id), with that price object; None when that cannot
    be known (then nothing is memoized)."""
    try:
        snapshot = table if table is not None else genai_prices.data_snapshot.get_snapshot()
        provider, model_info = snapshot.find_provider_model(model, None, provider_id, None)
        price = model_info.get_prices(when)
        resolved = (provider.id, model_info.id, id(price))
        model_price = getattr(getattr(genai_prices, "types", None), "ModelPrice", None)
        if model_price is not None and price is getattr(model_info, "prices", None) and isinstance(price, model_price):
            # One price, whatever the call's time (not a list of prices in force from a date or at some hours).
            with _lock:
                if len(_fixed) >= _MAX_CACHED:
                    _fixed.clear()
                _fixed[(provider_id, model)] = (snapshot, resolved, price)
        return resolved, price
    except Exception:  # an unknown model (calc_price says so below), or another genai-prices version
        return None, None


# (provider id, model) -> (the price table, what _price_in_force resolved, the price): a model whose price does not
# depend on the call's time, priced without asking genai-prices again (~1 µs a record of lookups in its caches) while
# the table stays the same object (genai-prices' ``UpdatePrices`` replaces it).
_fixed: dict[tuple[str | None, str], tuple[Any, tuple[Any, ...], Any]] = {}


def _fixed_price(table: Any, key: tuple[str | None, str]) -> tuple[tuple[Any, ...] | None, Any]:
    """:func:`_price_in_force`'s answer for ``key`` (provider id, model) when remembered in :data:`_fixed` for the
    price table ``table`` (the one in force); (None, None) otherwise. Nothing is looked up in genai-prices' caches on
    this path, so none of them grows and :func:`_bound_library_caches` is not needed."""
    fixed = _fixed.get(key)
    if fixed is None or fixed[0] is not table:
        return None, None
    return fixed[1], fixed[2]


# The price table the answers in _unknown, _hosts and _fixed were read from (None: not known).
_table: Any = None


def _table_in_force(genai_prices: Any) -> Any:
    """genai-prices' price table in force (None if it cannot say); the answers read from another table (models it did
    not know, hosts' providers, time-independent prices) are forgotten first: a new table (``UpdatePrices``,
    ``set_custom_snapshot``) may know a model the last one did not, and the entries would keep the old one alive."""
    global _table
    try:
        table = genai_prices.data_snapshot.get_snapshot()
    except Exception:  # another genai-prices version: the slow path says what it can
        return None
    if table is not _table:
        with _lock:
            _unknown.clear()
            _hosts.clear()
            _fixed.clear()
            _table = table
    return table


_library_error_logged = False


def _log_library_error_once(exc: Exception) -> None:
    global _library_error_logged
    if not _library_error_logged:
        _library_error_logged = True
        logger.warning("carrot_ai: genai-prices failed to price a call; cost_usd left out: %r", exc)
