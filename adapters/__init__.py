"""Chat platform adapters (Discord, Slack, console): thin translators of core messages."""
