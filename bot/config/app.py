"""The configuration as a whole: settings plus the accounts and channels they define."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from bot.channels import Channel
from bot.config.settings import Settings, database_password
from bot.models import Account


@dataclass(frozen=True)
class AppConfig:
    """Settings plus the accounts and channels they define."""

    settings: Settings
    accounts: tuple[Account, ...]
    source: str  # human description of where accounts came from
    raw_tables: Mapping[str, Any] = field(default_factory=dict, repr=False)  # holds literal keys
    channels: tuple[Channel, ...] = ()
    demo: bool = False  # nothing configured: a simulated account and the console
    # Platforms with an adapter but without the setting it needs (platform: that setting's variable): channels
    # subscribed to them from chat cannot be delivered to.
    unconfigured: Mapping[str, str] = field(default_factory=dict)

    def account(self, name: str) -> Account | None:
        """The account with this name, if configured."""
        return next((a for a in self.accounts if a.name == name), None)

    def secrets(self) -> list[str]:
        """Every secret value in use, so that logs can be scrubbed of them."""
        values = [secret for a in self.accounts for secret in a.secret_values()]
        for secret in (
            self.settings.slack_bot_token,
            self.settings.slack_signing_secret,
            self.settings.slack_app_token,
            self.settings.discord_token,
            self.settings.metrics_token,
        ):
            if secret is not None:
                values.append(secret.get_secret_value())
        for channel in self.channels:
            values += [s.get_secret_value() for s in (channel.url, channel.secret) if s is not None]
        password = database_password(self.settings.database_url)
        if password:
            values += [password, unquote(password)]
        return values
