"""The one port to the Anthropic API: the official SDK, pointed at the real service or the emulator."""

from nightbatch.claude.client import BatchInfo, ClaudeClient, RequestCounts

__all__ = ["BatchInfo", "ClaudeClient", "RequestCounts"]
