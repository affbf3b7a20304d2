"""Load the recorded VCR cassettes in ``tests/cassettes/`` and replay them over real HTTP through the real SDKs.

    interactions = load_cassette("openai/contrib_chat_completion_streaming")
    with CassetteServer(interactions) as server:
        result = replay_through_sdk(interactions[0], server.base_url)

`replay_through_sdk` repeats the recorded call the way the recording made it (sync or async client,
``stream``, ``with_raw_response``, ``messages.stream()``, ``chat.completions.parse``, beta messages),
so a test can pass its own (e.g. instrumented) client and look at what got traced.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ._http import BytesReply, ErrorReply, FakeServer, RecordedRequest, Reply

__all__ = [
    "CASSETTE_DIR",
    "CassetteServer",
    "Interaction",
    "ReplayResult",
    "cassette_names",
    "default_client",
    "load_cassette",
    "replay_through_sdk",
    "replay_through_sdk_async",
    "sdk_base_url",
]

CASSETTE_DIR = Path(__file__).resolve().parent.parent / "cassettes"
"""``tests/cassettes``: ``openai/*.yaml``, ``anthropic/*.yaml`` and the README with sources and license."""

# Hop-by-hop and framing headers that describe the recorded transfer, not the body we send.
_DROP_RESPONSE_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}


def _header_map(raw: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (raw or {}).items():
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        key = str(name).lower()
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


@dataclass(frozen=True)
class Interaction:
    """One recorded request and its response, normalised (lowercase header names, decoded body)."""

    cassette: str
    """``provider/name`` of the cassette it came from."""
    index: int
    method: str
    uri: str
    path: str
    """Path and query, e.g. ``/v1/messages?beta=true``."""
    request_body: str
    request_json: Any | None
    request_headers: dict[str, str]
    status: int
    response_headers: dict[str, str]
    """Lowercase names; without content-length / content-encoding / transfer-encoding / connection."""
    response_body: bytes
    """Gunzipped when the recording was gzip; SSE bodies as sent (events separated by a blank line)."""
    is_sse: bool

    @property
    def provider(self) -> str:
        """``"openai"`` or ``"anthropic"``."""
        host = urlsplit(self.uri).hostname or ""
        return "anthropic" if "anthropic" in host or self.cassette.startswith("anthropic/") else "openai"

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def sdk_async(self) -> bool:
        """Whether the recording used the async client (``x-stainless-async`` other than ``false``)."""
        return self.request_headers.get("x-stainless-async", "false").lower() not in ("false", "")

    @property
    def raw_response(self) -> bool:
        """Whether the call went through ``.with_raw_response``."""
        return self.request_headers.get("x-stainless-raw-response", "").lower() == "true"

    @property
    def helper_method(self) -> str | None:
        """The SDK helper that made the call: ``"stream"`` (Anthropic ``messages.stream()``),
        ``"chat.completions.parse"`` (also for the older ``beta.chat.completions.parse``), or None."""
        helper = self.request_headers.get("x-stainless-helper-method")
        if helper:
            return "chat.completions.parse" if helper.endswith("chat.completions.parse") else helper
        if self.request_headers.get("x-stainless-stream-helper"):
            return "stream"
        return None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed answer."""
        return isinstance(self.request_json, dict) and bool(self.request_json.get("stream"))

    @property
    def beta(self) -> bool:
        """Whether it was Anthropic's ``client.beta.messages`` (``?beta=true``)."""
        return "beta=true" in self.path.partition("?")[2]

    @property
    def betas(self) -> list[str]:
        """The ``anthropic-beta`` header as a list."""
        raw = self.request_headers.get("anthropic-beta", "")
        return [b.strip() for b in raw.split(",") if b.strip()]

    @property
    def response_json(self) -> Any | None:
        """The response body parsed as JSON (None for SSE or non-JSON)."""
        if self.is_sse:
            return None
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    @property
    def sse_events(self) -> list[tuple[str | None, str]]:
        """The recorded SSE events as ``(event name or None, data text)``."""
        events = []
        for block in self.response_body.decode().split("\n\n"):
            name, data = None, []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
            if name or data:
                events.append((name, "\n".join(data)))
        return events

    def to_reply(self) -> Reply:
        """A reply that sends this recorded response (SSE bodies streamed in slices)."""
        return BytesReply(self.status, self.response_body, self.response_headers, stream=self.is_sse)


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if not name.endswith(".yaml"):
        name += ".yaml"
    for candidate in (CASSETTE_DIR / name, CASSETTE_DIR / "openai" / name, CASSETTE_DIR / "anthropic" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no cassette {name_or_path!r} under {CASSETTE_DIR}")


def load_cassette(name_or_path: str | Path) -> list[Interaction]:
    """The interactions of a cassette, in recorded order.

    `name_or_path`: a path, or a name relative to `CASSETTE_DIR` with or without the provider folder and
    ``.yaml`` (``"openai/contrib_chat_completion_404"``, ``"contrib_chat_completion_404.yaml"``).
    """
    path = _resolve(name_or_path)
    label = f"{path.parent.name}/{path.stem}"
    with path.open("rb") as f:
        data = yaml.safe_load(f)
    out: list[Interaction] = []
    for index, item in enumerate(data.get("interactions") or []):
        request, response = item["request"], item["response"]
        body = request.get("body") or ""
        if isinstance(body, bytes):
            body = body.decode()
        try:
            request_json = json.loads(body) if body else None
        except ValueError:
            request_json = None
        raw_headers = _header_map(response.get("headers"))
        payload = (response.get("body") or {}).get("string", b"")
        if isinstance(payload, str):
            payload = payload.encode()
        if raw_headers.get("content-encoding", "").lower() == "gzip" or payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        is_sse = "text/event-stream" in raw_headers.get("content-type", "")
        if is_sse and payload and not payload.endswith(b"\n\n"):
            payload = payload.rstrip(b"\n") + b"\n\n"
        uri = str(request["uri"])
        parts = urlsplit(uri)
        out.append(
            Interaction(
                cassette=label,
                index=index,
                method=str(request.get("method", "POST")).upper(),
                uri=uri,
                path=parts.path + (f"?{parts.query}" if parts.query else ""),
                request_body=body,
                request_json=request_json,
                request_headers=_header_map(request.get("headers")),
                status=int(response["status"]["code"]),
                response_headers={k: v for k, v in raw_headers.items() if k not in _DROP_RESPONSE_HEADERS},
                response_body=payload,
                is_sse=is_sse,
            )
        )
    return out


def cassette_names(provider: str | None = None) -> list[str]:
    """Every cassette as ``"provider/name"`` (no ``.yaml``), sorted; only one provider's when given."""
    providers = [provider] if provider else ["anthropic", "openai"]
    return sorted(f"{p}/{f.stem}" for p in providers for f in (CASSETTE_DIR / p).glob("*.yaml"))


class CassetteServer(FakeServer):
    """Answers each request with the next recorded interaction.

    With `match_path` (default) the next unused interaction with the same method and route (query
    ignored: anthropic 2.x no longer sends ``?beta=true``) is used, else simply the next one. A request
    with nothing left to answer gets a 500 with ``x-should-retry: false`` and is noted in `mismatches`.
    """

    def __init__(
        self,
        interactions: Sequence[Interaction] | str | Path,
        *,
        match_path: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.interactions = list(load_cassette(interactions) if isinstance(interactions, (str, Path)) else interactions)
        self.match_path = match_path
        self._used: list[bool] = [False] * len(self.interactions)
        self.served: list[tuple[RecordedRequest, Interaction]] = []
        """Each request with the interaction that answered it."""
        self.mismatches: list[RecordedRequest] = []

    def _take(self, request: RecordedRequest) -> Interaction | None:
        with self._lock:
            for i, interaction in enumerate(self.interactions):
                if self._used[i]:
                    continue
                if self.match_path and (
                    interaction.method != request.method or interaction.route != _normal_route(request.route)
                ):
                    continue
                self._used[i] = True
                self.served.append((request, interaction))
                return interaction
            self.mismatches.append(request)
            return None

    def default_reply(self, request: RecordedRequest) -> Reply:
        interaction = self._take(request)
        if interaction is None:
            return ErrorReply(
                500,
                {"error": {"message": f"cassette has no interaction left for {request.method} {request.path}"}},
                {"x-should-retry": "false"},
            )
        return interaction.to_reply()

    def extra_response_headers(self) -> dict[str, str]:
        return {}

    @property
    def all_used(self) -> bool:
        with self._lock:
            return all(self._used)


def _normal_route(route: str) -> str:
    return route if route.startswith("/v1/") else "/v1" + route


# -- replaying through the SDKs ------------------------------------------------------------------


@dataclass
class ReplayResult:
    """What the SDK handed back for one replayed interaction."""

    value: Any = None
    """The parsed object (completion, Response, Message, embeddings), or the stream/manager object."""
    items: list[Any] = field(default_factory=list)
    """For streams: every chunk / event the SDK yielded."""
    final: Any = None
    """For helper streams: ``get_final_message()`` / ``get_final_completion()`` / ``get_final_response()``;
    for non-stream calls the same as `value`."""
    raw: Any = None
    """For ``with_raw_response``: the raw response object."""


def sdk_base_url(server_base_url: str, provider: str) -> str:
    """The ``base_url`` to give the SDK: OpenAI's includes ``/v1``, Anthropic's does not."""
    return server_base_url.rstrip("/") + ("/v1" if provider == "openai" else "")


def default_client(provider: str, base_url: str, is_async: bool = False) -> Any:
    """A real SDK client for `base_url` (the server's, without ``/v1``) with retries off."""
    url = sdk_base_url(base_url, provider)
    if provider == "openai":
        import openai

        cls: Any = openai.AsyncOpenAI if is_async else openai.OpenAI
        http: Any = openai.DefaultAsyncHttpxClient if is_async else openai.DefaultHttpxClient
        # verify=False: plain HTTP on loopback, and it skips loading the CA bundle (~50 ms per client).
        return cls(base_url=url, api_key="sk-test", max_retries=0, http_client=http(verify=False))
    import anthropic

    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    http = anthropic.DefaultAsyncHttpxClient if is_async else anthropic.DefaultHttpxClient
    return cls(base_url=url, api_key="sk-ant-test", max_retries=0, http_client=http(verify=False))


ClientFactory = Callable[[str, str, bool], Any]
"""``(provider, server_base_url, is_async) -> client``."""


def _split_kwargs(method: Callable[..., Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` as keyword arguments of `method`; keys it does not take go into ``extra_body``."""
    params = inspect.signature(method).parameters
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        (kwargs if key in params else extra)[key] = value
    if extra:
        kwargs["extra_body"] = {**extra, **kwargs.get("extra_body", {})}
    return kwargs


def _plan(client: Any, interaction: Interaction) -> tuple[str, Callable[..., Any], dict[str, Any]]:
    """(how, method, kwargs): how is ``call``, ``stream_helper`` or ``raw``."""
    body = dict(interaction.request_json or {})
    route = interaction.route
    if interaction.provider == "anthropic":
        if route != "/v1/messages":
            raise ValueError(f"cannot replay {interaction.method} {interaction.path}")
        resource = client.beta.messages if interaction.beta else client.messages
        if interaction.beta and interaction.betas:
            body["betas"] = interaction.betas
        if interaction.helper_method == "stream":
            body.pop("stream", None)
            return "stream_helper", resource.stream, _split_kwargs(resource.stream, body)
    else:
        resources = {
            "/v1/chat/completions": lambda: client.chat.completions,
            "/v1/responses": lambda: client.responses,
            "/v1/embeddings": lambda: client.embeddings,
            "/v1/completions": lambda: client.completions,
        }
        if route not in resources:
            raise ValueError(f"cannot replay {interaction.method} {interaction.path}")
        resource = resources[route]()
        if interaction.helper_method == "chat.completions.parse":
            return "call", resource.parse, _split_kwargs(resource.parse, body)
    if interaction.raw_response:
        raw_create = resource.with_raw_response.create
        return "raw", raw_create, _split_kwargs(resource.create, body)
    return "call", resource.create, _split_kwargs(resource.create, body)


def _call_sync(client: Any, interaction: Interaction) -> ReplayResult:
    how, method, kwargs = _plan(client, interaction)
    result = ReplayResult()
    if how == "stream_helper":
        with method(**kwargs) as stream:
            result.value = stream
            result.items = list(stream)
            result.final = stream.get_final_message()
        return result
    value = method(**kwargs)
    if how == "raw":
        result.raw = value
        value = value.parse()
    result.value = value
    if interaction.stream:
        with value:
            result.items = list(value)
    else:
        result.final = value
    return result


async def _call_async(client: Any, interaction: Interaction) -> ReplayResult:
    how, method, kwargs = _plan(client, interaction)
    result = ReplayResult()
    if how == "stream_helper":
        async with method(**kwargs) as stream:
            result.value = stream
            result.items = [item async for item in stream]
            result.final = await stream.get_final_message()
        return result
    value = await method(**kwargs)
    if how == "raw":
        result.raw = value
        value = value.parse()  # the legacy raw response parses synchronously, even on the async client
        if inspect.isawaitable(value):
            value = await value
    result.value = value
    if interaction.stream:
        async with value:
            result.items = [item async for item in value]
    else:
        result.final = value
    return result


def replay_through_sdk(
    interaction: Interaction,
    base_url: str,
    *,
    client: Any = None,
    client_factory: ClientFactory | None = None,
) -> ReplayResult:
    """Repeat the recorded call through the real SDK against the server at `base_url` (no ``/v1``).

    The call is the one the recording made: chat completions / responses / embeddings / completions
    or (beta) messages; ``stream=True`` streams are read to the end; ``with_raw_response``,
    Anthropic's ``messages.stream()`` (``get_final_message()`` is called) and ``chat.completions.parse``
    when the recorded headers say so. Request keys the current SDK no longer takes (anthropic's
    ``temperature`` / ``top_k`` / ``top_p``, beta ``output_format``) go through ``extra_body``.

    Async recordings run on the async client in a fresh event loop (``asyncio.run``); call
    `replay_through_sdk_async` from inside a running loop instead. `client` is used as is (it must be
    sync or async to match `interaction.sdk_async`, and is not closed); otherwise `client_factory`
    (default `default_client`, retries off) builds one, which is closed afterwards. SDK errors
    (``APIStatusError`` subclasses for 4xx/5xx) propagate.
    """
    if interaction.sdk_async:
        return asyncio.run(
            replay_through_sdk_async(interaction, base_url, client=client, client_factory=client_factory)
        )
    own = client is None
    if own:
        client = (client_factory or default_client)(interaction.provider, base_url, False)
    try:
        return _call_sync(client, interaction)
    finally:
        if own:
            client.close()


async def replay_through_sdk_async(
    interaction: Interaction,
    base_url: str,
    *,
    client: Any = None,
    client_factory: ClientFactory | None = None,
) -> ReplayResult:
    """`replay_through_sdk` for async recordings, awaited in the caller's event loop."""
    own = client is None
    if own:
        client = (client_factory or default_client)(interaction.provider, base_url, True)
    try:
        return await _call_async(client, interaction)
    finally:
        if own:
            await client.close()
