"""The seed's pipeline example (docs: "Pipeline Tracing"): ``@carrot_ai.trace`` around a wrapped OpenAI client.

``carrot-ai demo`` runs it offline against a local ingest server and a local stand-in model. On its own:

    carrot-ai serve &                                        # a local server at http://127.0.0.1:8787
    CARROT_BASE_URL=http://127.0.0.1:8787 OPENAI_API_KEY=sk-... python examples/pipeline.py
"""

from __future__ import annotations

import os
import sys

from openai import OpenAI

import carrot_ai

carrot_ai.init()  # CARROT_API_KEY and CARROT_BASE_URL from the environment (a local server needs no key)

client = carrot_ai.wrap(OpenAI())

MODEL = os.environ.get("CARROT_DEMO_MODEL", "gpt-4o-mini")
KNOWLEDGE_BASE = {
    "password": "To reset your password, go to Settings > Security and choose Reset password.",
    "billing": "Invoices are under Settings > Billing; plans can be changed at any time.",
    "export": "Data exports are available as CSV from the Reports page.",
}


@carrot_ai.trace
def search_knowledge_base(question: str) -> list[str]:
    words = {word.strip("?.,!").lower() for word in question.split()}
    return [text for topic, text in KNOWLEDGE_BASE.items() if topic in words] or list(KNOWLEDGE_BASE.values())


@carrot_ai.trace
def answer_question(question: str) -> str:
    docs = search_knowledge_base(question)

    response = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Context:\n" + "\n".join(docs)},
            {"role": "user", "content": question},
        ],
    )

    return response.choices[0].message.content or ""


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "How do I reset my password?"
    print(answer_question(question))
    carrot_ai.flush()
