"""Provider adapters: ``openai``, ``anthropic``, ``litellm``. Each imports its own provider SDK only."""
