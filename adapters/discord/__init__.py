"""The Discord adapter: discord.py over the gateway, with slash commands and persistent buttons."""
