"""Discord's persistent buttons (Refresh, Snooze): dynamic items, so they keep working after a restart."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.messages import Action, Message

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter


class RefreshButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"creditbot:refresh(?::(?P<account>[A-Za-z0-9_-]{1,64}))?",
):
    """The Refresh button (of one account or all); dynamic, so it keeps working after a restart."""

    def __init__(self, account: str | None = None) -> None:
        self.account = account
        custom_id = f"creditbot:refresh:{account}" if account else "creditbot:refresh"
        super().__init__(
            discord.ui.Button(label="Refresh", style=discord.ButtonStyle.secondary, custom_id=custom_id)
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RefreshButton:
        """Rebuild the button from its custom id."""
        return cls(match["account"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Re-fetch and show the balances again."""
        adapter: DiscordAdapter = interaction.client.creditbot_adapter
        await adapter.on_action(interaction, Action("refresh", "Refresh", self.account))


class SnoozeButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"creditbot:snooze:(?P<account>[A-Za-z0-9_-]{1,64}):(?P<duration>\d+[mhd])",
):
    """The Snooze 24h button of one account; dynamic, so it keeps working after a restart."""

    def __init__(self, account: str, duration: str = "24h") -> None:
        self.account, self.duration = account, duration
        super().__init__(
            discord.ui.Button(
                label=f"Snooze {account} {duration}",
                style=discord.ButtonStyle.secondary,
                custom_id=f"creditbot:snooze:{account}:{duration}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SnoozeButton:
        """Rebuild the button from its custom id."""
        return cls(match["account"], match["duration"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Snooze the account (admins only; the core checks)."""
        adapter: DiscordAdapter = interaction.client.creditbot_adapter
        await adapter.on_action(interaction, Action("snooze", "Snooze", self.account, self.duration))


def actions_view(message: Message) -> discord.ui.View | None:
    """The buttons of a message as a persistent view (no timeout)."""
    if not message.actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in message.actions[:5]:
        if action.kind == "refresh":
            view.add_item(RefreshButton(action.account))
        elif action.kind == "snooze" and action.account:
            view.add_item(SnoozeButton(action.account, action.duration or "24h"))
    return view
