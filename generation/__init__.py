"""Prompts, context packing, LLM backends and citations (not built yet)."""

__all__: list[str] = []
