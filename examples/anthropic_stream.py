"""Stream an answer with ``messages.stream()``: text as it arrives, then the final message; one trace for the call.

Runs offline as is (a stand-in model and a local ingest that prints each record); set ANTHROPIC_BASE_URL /
ANTHROPIC_API_KEY and CARROT_API_KEY (and CARROT_BASE_URL) to use the real services instead.

    python examples/anthropic_stream.py
"""

from __future__ import annotations

from _anthropic_standin import offline
from anthropic import Anthropic

import carrot_ai


@carrot_ai.trace(name="haiku-writer")
def write(topic: str) -> str:
    client = carrot_ai.wrap(Anthropic(), tags=["example"])
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=512,
        system="You write haiku.",
        messages=[{"role": "user", "content": f"A haiku about {topic}."}],
    ) as stream:
        for text in stream.text_stream:
            print(text, end="", flush=True)
        print()
        message = stream.get_final_message()
    print(f"(stop reason {message.stop_reason}, {message.usage.output_tokens} output tokens)")
    return stream.get_final_text()


if __name__ == "__main__":
    with offline():
        write("autumn rain")
        carrot_ai.flush()
