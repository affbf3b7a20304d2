from __future__ import annotations

import carrot_ai
from carrot_ai import semconv


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    assert carrot_ai.__all__ == sorted(carrot_ai.__all__)
    public = {name for name in dir(carrot_ai) if not name.startswith("_")} - {"annotations", "export", "semconv"}
    public -= {name for name in public if type(getattr(carrot_ai, name)).__name__ == "module"}
    assert public | {"__version__"} == set(carrot_ai.__all__)


def test_semconv_names_match_the_installed_conventions() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

    checked = 0
    for name in dir(semconv):
        if name.startswith("GEN_AI_") and hasattr(gen_ai_attributes, name):
            assert getattr(semconv, name) == getattr(gen_ai_attributes, name), name
            checked += 1
    assert checked >= 30
