"""The seed's quick start: wrap the OpenAI client, call it as usual, and every call becomes a trace.

Runs offline as is (a stand-in model and a local ingest that prints each record); set OPENAI_BASE_URL /
OPENAI_API_KEY and CARROT_API_KEY (and CARROT_BASE_URL) to use the real services instead.

    python examples/openai_quickstart.py
"""

from __future__ import annotations

from _openai_standin import offline
from openai import OpenAI

import carrot_ai


def main() -> None:
    carrot_ai.init()  # the seed passes api_key="sk-..."; here CARROT_API_KEY / CARROT_BASE_URL come from the env
    client = carrot_ai.wrap(OpenAI())

    response = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello!"}],
    )
    print(response.choices[0].message.content)
    carrot_ai.flush()


if __name__ == "__main__":
    with offline():
        main()
