"""The provider-independent core: call lifecycle, stream proxy base, content policy, serialization, guard."""
