"""pytest-llmbench: JSON suites of LLM prompts as pytest items against OpenAI-compatible endpoints."""

__version__ = "0.1.0"
