"""Engines answer requests: a managed vLLM server, OpenAI-compatible and Anthropic endpoints,
transformers in-process, or a script. Their shared types are serving.base; serving.engines names
them all, lazily, and opens the one a target needs."""
