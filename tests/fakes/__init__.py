"""Fake OpenAI / Anthropic servers and VCR cassette replay for the end-to-end tests."""
