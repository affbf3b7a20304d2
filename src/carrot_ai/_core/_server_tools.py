"""What carrot knows of the OpenAI Responses API's built-in (server-run) tools, shared by the instrumentation, which
records their output items, and the exporter's conversion of other instrumentations' ``server_tool_call`` parts, so
that both make the same ``server_tool_calls`` entries."""

from __future__ import annotations

# A built-in tool's type -> the type of its output item.
OPENAI_SERVER_ITEMS = {
    "web_search": "web_search_call",
    "file_search": "file_search_call",
    "code_interpreter": "code_interpreter_call",
    "image_generation": "image_generation_call",
    "mcp": "mcp_call",
    "tool_search": "tool_search_call",
}
# A built-in tool's type -> the field that is its call's input, where one field is (the query of a web search, the
# code run); for any other tool, the input is all its call fields (an MCP call's server, tool name and arguments).
OPENAI_SERVER_INPUT = {
    "web_search": "action",
    "file_search": "queries",
    "code_interpreter": "code",
    "tool_search": "arguments",
}
# The fields that are a server call's result, the first one present being it (an MCP call's ``output``, a file
# search's ``results``, the code interpreter's ``outputs``, a generated image, the tools an MCP server lists).
SERVER_RESULT = ("output", "outputs", "results", "result", "tools")
