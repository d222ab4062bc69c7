"""Configuration: settings from the environment, accounts and channels from a TOML file or discovery, the demo."""

from __future__ import annotations

from bot.config.app import AppConfig
from bot.config.channel_tables import ChannelConfig
from bot.config.discovery import DEMO_BANNER, DISCOVERY_VARIABLES, demo_config, discovered_accounts
from bot.config.file import (
    DEFAULT_CONFIG_PATH,
    RESERVED_NAMES,
    AccountConfig,
    load_config,
)
from bot.config.settings import (
    Settings,
    check_key,
    check_timezone,
    database_password,
    load_settings,
    validate_base_url,
)
from bot.errors import ConfigError
from bot.models import Account
from bot.text import mask_secret

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEMO_BANNER",
    "DISCOVERY_VARIABLES",
    "RESERVED_NAMES",
    "Account",
    "AccountConfig",
    "AppConfig",
    "ChannelConfig",
    "ConfigError",
    "Settings",
    "check_key",
    "check_timezone",
    "database_password",
    "demo_config",
    "discovered_accounts",
    "load_config",
    "load_settings",
    "mask_secret",
    "validate_base_url",
]
