"""The seed's Anthropic snippet: wrap the client, call it as usual, and every call becomes a trace.

Runs offline as is (a stand-in model and a local ingest that prints each record); set ANTHROPIC_BASE_URL /
ANTHROPIC_API_KEY and CARROT_API_KEY (and CARROT_BASE_URL) to use the real services instead.

    python examples/anthropic_quickstart.py
"""

from __future__ import annotations

from _anthropic_standin import offline
from anthropic import Anthropic

import carrot_ai


def main() -> None:
    # No carrot_ai.init() needed: CARROT_API_KEY (or a local CARROT_BASE_URL) initializes on first use.
    client = carrot_ai.wrap(Anthropic())
    response = client.messages.create(
        model="claude-sonnet-4-20250514",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Hello!"}],
    )
    print(response.content[0].text)
    carrot_ai.flush()


if __name__ == "__main__":
    with offline():
        main()
