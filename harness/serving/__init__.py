"""Engines answer requests: a managed vLLM server, OpenAI-compatible and Anthropic endpoints, transformers
in-process, or a script. Their shared types and registry are serving.base; serving.engines loads them all
and opens the one a target needs."""
