"""Stream an answer with ``AsyncOpenAI``: text as it arrives; one trace for the call, with its token usage.

The wrapped client asks the API for the usage chunk and keeps it to itself, so ``chunk.choices[0]`` works on every
chunk the loop sees. Runs offline as is (a stand-in model and a local ingest that prints each record); set
OPENAI_BASE_URL / OPENAI_API_KEY and CARROT_API_KEY (and CARROT_BASE_URL) to use the real services instead.

    python examples/openai_async_stream.py
"""

from __future__ import annotations

import asyncio

from _openai_standin import offline
from openai import AsyncOpenAI

import carrot_ai


@carrot_ai.trace(name="haiku-writer")
async def write(topic: str) -> str:
    async with carrot_ai.wrap(AsyncOpenAI(), tags=["example"]) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You write haiku."},
                {"role": "user", "content": f"A haiku about {topic}."},
            ],
            stream=True,
        )
        pieces = []
        async for chunk in stream:
            piece = chunk.choices[0].delta.content or ""
            pieces.append(piece)
            print(piece, end="", flush=True)
        print()
    return "".join(pieces)


if __name__ == "__main__":
    with offline():
        asyncio.run(write("autumn rain"))
        carrot_ai.flush()
