"""Every span attribute name carrot-ai reads or writes, in one place.

GenAI names come from ``opentelemetry-semantic-conventions`` when the installed version defines them (the
literal is the fallback for older versions, and a test checks the two agree). Names the conventions do not
cover live under the ``carrot.`` prefix.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai


def _gen(constant: str, literal: str) -> str:
    value = getattr(_gen_ai, constant, literal)
    return value if isinstance(value, str) else literal


# --- GenAI semantic conventions (current names) --------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen("GEN_AI_OPERATION_NAME", "gen_ai.operation.name")
GEN_AI_PROVIDER_NAME: Final = _gen("GEN_AI_PROVIDER_NAME", "gen_ai.provider.name")
GEN_AI_CONVERSATION_ID: Final = _gen("GEN_AI_CONVERSATION_ID", "gen_ai.conversation.id")
GEN_AI_REQUEST_MODEL: Final = _gen("GEN_AI_REQUEST_MODEL", "gen_ai.request.model")
GEN_AI_REQUEST_TEMPERATURE: Final = _gen("GEN_AI_REQUEST_TEMPERATURE", "gen_ai.request.temperature")
GEN_AI_REQUEST_TOP_P: Final = _gen("GEN_AI_REQUEST_TOP_P", "gen_ai.request.top_p")
GEN_AI_REQUEST_TOP_K: Final = _gen("GEN_AI_REQUEST_TOP_K", "gen_ai.request.top_k")
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen("GEN_AI_REQUEST_MAX_TOKENS", "gen_ai.request.max_tokens")
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _gen("GEN_AI_REQUEST_STOP_SEQUENCES", "gen_ai.request.stop_sequences")
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = _gen("GEN_AI_REQUEST_FREQUENCY_PENALTY", "gen_ai.request.frequency_penalty")
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = _gen("GEN_AI_REQUEST_PRESENCE_PENALTY", "gen_ai.request.presence_penalty")
GEN_AI_REQUEST_SEED: Final = _gen("GEN_AI_REQUEST_SEED", "gen_ai.request.seed")
GEN_AI_REQUEST_CHOICE_COUNT: Final = _gen("GEN_AI_REQUEST_CHOICE_COUNT", "gen_ai.request.choice.count")
GEN_AI_REQUEST_STREAM: Final = _gen("GEN_AI_REQUEST_STREAM", "gen_ai.request.stream")
GEN_AI_REQUEST_ENCODING_FORMATS: Final = _gen("GEN_AI_REQUEST_ENCODING_FORMATS", "gen_ai.request.encoding_formats")
GEN_AI_OUTPUT_TYPE: Final = _gen("GEN_AI_OUTPUT_TYPE", "gen_ai.output.type")
GEN_AI_RESPONSE_ID: Final = _gen("GEN_AI_RESPONSE_ID", "gen_ai.response.id")
GEN_AI_RESPONSE_MODEL: Final = _gen("GEN_AI_RESPONSE_MODEL", "gen_ai.response.model")
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen("GEN_AI_RESPONSE_FINISH_REASONS", "gen_ai.response.finish_reasons")
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _gen(
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK", "gen_ai.response.time_to_first_chunk"
)
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen("GEN_AI_USAGE_INPUT_TOKENS", "gen_ai.usage.input_tokens")
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen("GEN_AI_USAGE_OUTPUT_TOKENS", "gen_ai.usage.output_tokens")
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _gen(
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS", "gen_ai.usage.cache_read.input_tokens"
)
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _gen(
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS", "gen_ai.usage.cache_creation.input_tokens"
)
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _gen(
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS", "gen_ai.usage.reasoning.output_tokens"
)
GEN_AI_INPUT_MESSAGES: Final = _gen("GEN_AI_INPUT_MESSAGES", "gen_ai.input.messages")
GEN_AI_OUTPUT_MESSAGES: Final = _gen("GEN_AI_OUTPUT_MESSAGES", "gen_ai.output.messages")
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _gen("GEN_AI_SYSTEM_INSTRUCTIONS", "gen_ai.system_instructions")
GEN_AI_TOOL_DEFINITIONS: Final = _gen("GEN_AI_TOOL_DEFINITIONS", "gen_ai.tool.definitions")
GEN_AI_TOOL_NAME: Final = _gen("GEN_AI_TOOL_NAME", "gen_ai.tool.name")
GEN_AI_TOOL_CALL_ID: Final = _gen("GEN_AI_TOOL_CALL_ID", "gen_ai.tool.call.id")
GEN_AI_TOOL_TYPE: Final = _gen("GEN_AI_TOOL_TYPE", "gen_ai.tool.type")
GEN_AI_TOOL_DESCRIPTION: Final = _gen("GEN_AI_TOOL_DESCRIPTION", "gen_ai.tool.description")
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen("GEN_AI_TOOL_CALL_ARGUMENTS", "gen_ai.tool.call.arguments")
GEN_AI_TOOL_CALL_RESULT: Final = _gen("GEN_AI_TOOL_CALL_RESULT", "gen_ai.tool.call.result")
GEN_AI_AGENT_NAME: Final = _gen("GEN_AI_AGENT_NAME", "gen_ai.agent.name")

# A name newer drafts of the conventions use for cache writes; read, never written.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"

# --- Older GenAI names, read so spans from older instrumentations still convert -------------------------------
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_read_input_tokens"
GEN_AI_USAGE_REASONING_TOKENS_OLD: Final = "gen_ai.usage.reasoning_tokens"
GEN_AI_PROMPT: Final = "gen_ai.prompt"
GEN_AI_COMPLETION: Final = "gen_ai.completion"

# --- Names the anthropic SDK's own spans use (scope com.anthropic.sdk.python), read by the exporter -------------
ANTHROPIC_REQUEST_ID: Final = "anthropic.request.id"
ANTHROPIC_MESSAGE_STOP_REASON: Final = "anthropic.message.stop_reason"
# The part of the cache writes made with a 1-hour TTL (billed at twice the input rate, a 5-minute write at 1.25x):
# anthropic's own spans set it, and so does our instrumentation, so that the cost prices it at its own rate.
ANTHROPIC_USAGE_CACHE_WRITE_1H_INPUT_TOKENS: Final = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"

# --- Audio tokens (OpenAI's ``prompt_tokens_details.audio_tokens`` / ``completion_tokens_details.audio_tokens``) ---
# The audio part of the input / output tokens, which an audio model bills at several times its text rates (gpt-audio:
# $32 / $64 per million, text $2.5 / $10). The GenAI conventions have no name for them, so, like Anthropic's 1-hour
# cache writes above, they carry the namespace of the API that reports them; named as the record's metadata keys and
# genai-prices' usage fields (``input_audio_tokens``), not after the JSON path, which differs between chat
# (``prompt_…``) and the other APIs (``input_…``). Our OpenAI and LiteLLM instrumentations set them only when
# non-zero; the exporter reads them from any span.
OPENAI_USAGE_INPUT_AUDIO_TOKENS: Final = "openai.usage.input_audio_tokens"
OPENAI_USAGE_OUTPUT_AUDIO_TOKENS: Final = "openai.usage.output_audio_tokens"

# --- General conventions --------------------------------------------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVICE_NAME: Final = "service.name"

# --- GenAI operation names ------------------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CREATE_AGENT: Final = "create_agent"
# Operations that are one call to a model: the ones two instrumentations may both record.
MODEL_CALL_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_EMBEDDINGS, OP_GENERATE_CONTENT})

# --- carrot.* attributes (ours) -------------------------------------------------------------------------------
CARROT_KIND: Final = "carrot.kind"  # "llm" | "function" | "tool"
CARROT_NAME: Final = "carrot.name"  # record name
CARROT_INPUT: Final = "carrot.input"  # JSON: the record's input object
CARROT_OUTPUT: Final = "carrot.output"  # JSON: the record's output object
CARROT_METADATA: Final = "carrot.metadata"  # JSON: user-supplied metadata
CARROT_TAGS: Final = "carrot.tags"  # tuple[str, ...]
CARROT_PARENT_SPAN_ID: Final = "carrot.parent_span_id"  # hex span id of the nearest exported ancestor; "" = root
CARROT_SOURCE: Final = "carrot.source"  # "sdk" | "decorator" | "manual" | "litellm"
CARROT_USER_ID: Final = "carrot.user_id"
CARROT_SESSION_ID: Final = "carrot.session_id"
CARROT_ERROR_MESSAGE: Final = "carrot.error.message"
CARROT_ERROR_CODE: Final = "carrot.error.code"
CARROT_REQUEST_ID: Final = "carrot.request_id"
CARROT_COST_USD: Final = "carrot.cost_usd"
CARROT_CANCELLED: Final = "carrot.cancelled"
CARROT_CONTENT_CAPTURED: Final = "carrot.content_captured"
LITELLM_CALL_ID: Final = "litellm.call_id"  # LiteLLM's own OpenTelemetry callback: the call its span records
CARROT_DUPLICATE: Final = "carrot.duplicate"  # True: another span records the same model call (never a record)
CARROT_STARTED_AT: Final = "carrot.started_at"  # explicit start for manual capture / backfills (ISO 8601)
CARROT_ENDED_AT: Final = "carrot.ended_at"
CARROT_RECORD_ID: Final = "carrot.record_id"  # explicit record id (manual capture: the event's id)
CARROT_PARENT_RECORD_ID: Final = "carrot.parent_record_id"  # explicit parent record id (manual capture)

# Instrumentation scope names: spans from these scopes are ours.
SCOPE_PREFIX: Final = "carrot_ai"
SCOPE_DECORATOR: Final = "carrot_ai"
SCOPE_OPENAI: Final = "carrot_ai.openai"
SCOPE_ANTHROPIC: Final = "carrot_ai.anthropic"
SCOPE_LITELLM: Final = "carrot_ai.litellm"
SCOPE_MANUAL: Final = "carrot_ai.manual"
# The anthropic SDK's own instrumentation scope (2.x emits a span per API call under it).
SCOPE_ANTHROPIC_SDK: Final = "com.anthropic.sdk.python"
