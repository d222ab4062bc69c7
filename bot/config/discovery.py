"""Zero-config discovery (accounts from provider keys in the environment) and the demo configuration."""

from __future__ import annotations

from decimal import Decimal

from pydantic import SecretStr

from bot.channels import Channel, parse_clock
from bot.config.app import AppConfig
from bot.config.settings import Settings, validate_base_url
from bot.errors import ConfigError
from bot.models import Account, Severity
from bot.providers import PROVIDERS
from bot.providers.moonshot import host_currency

# Zero-config discovery: variable -> provider (the account is named after the provider), from each provider's
# `env`, in the registry's order.
DISCOVERY_VARIABLES: tuple[tuple[str, str], ...] = tuple(
    (provider.env, name) for name, provider in PROVIDERS.items() if provider.env is not None
)


def discovered_accounts(settings: Settings) -> list[Account]:
    """One account per discovery variable that is set, named after its provider."""
    accounts = []
    for variable, provider_name in DISCOVERY_VARIABLES:
        key = settings.discovery_key(variable)
        if key is None:
            continue
        provider = PROVIDERS[provider_name]
        base_url = provider.default_base_url
        currency = None
        if provider_name == "moonshot" and settings.moonshot_base_url:
            try:
                base_url = validate_base_url(settings.moonshot_base_url)
            except ValueError as exc:
                raise ConfigError([f"environment: MOONSHOT_BASE_URL: {exc}"]) from None
            currency = host_currency(base_url)
        if provider_name == "relay":
            # A relay has no documented host: its address comes with the key (never from OPENAI_BASE_URL, which
            # often points at vLLM, Ollama or a LiteLLM proxy without billing endpoints).
            if not settings.relay_base_url:
                raise ConfigError(
                    [f"environment: {variable} is set but RELAY_BASE_URL is not: set it to the relay's address"]
                )
            try:
                base_url = validate_base_url(settings.relay_base_url)
            except ValueError as exc:
                raise ConfigError([f"environment: RELAY_BASE_URL: {exc}"]) from None
        if provider_name == "deepseek":
            currency = settings.deepseek_currency  # DeepSeek lists several; without it, the first one in use
        accounts.append(
            Account(
                name=provider_name,
                provider=provider_name,
                api_key=key,
                base_url=base_url,
                origin=f"env {variable}",
                key_variable=variable,
                currency=currency,
                spend_only=provider.spend_only,
            )
        )
    return accounts


DEMO_BANNER = """\
============================================================================
 creditbot DEMO MODE: nothing is configured, so this runs a simulated
 account named 'demo' and prints to this console. No real API is called.
 To watch your accounts, put a key in .env (e.g. OPENAI_ADMIN_KEY=sk-admin-...,
 DEEPSEEK_API_KEY=sk-...) or list [[accounts]] in creditbot.toml; see README.
============================================================================"""


# The demo keeps its own database, so that nothing it stores (readings, alert states, the outbox key of a
# day's summary) is ever mixed with real accounts configured later.
DEMO_DATABASE_URL = "sqlite+aiosqlite:///./data/demo.db"


def demo_config(config: AppConfig) -> AppConfig:
    """The configuration of the demo: one simulated account, the console as its channel, its own database."""
    settings = config.settings.model_copy(update={"database_url": DEMO_DATABASE_URL})
    account = Account(
        name="demo",
        provider="demo",
        api_key=SecretStr("demo-key-not-secret"),
        base_url=PROVIDERS["demo"].default_base_url,
        origin="demo",
        warn_below=Decimal(15),
        critical_below=Decimal(5),
        spend_only=PROVIDERS["demo"].spend_only,
    )
    channel = Channel(
        platform="console",
        id="stdout",
        daily_summary=parse_clock(settings.summary_time),
        timezone=settings.timezone,
        alerts=Severity.INFO,
        source="demo",
    )
    return AppConfig(
        settings,
        (account,),
        "demo",
        config.raw_tables,
        (channel, *config.channels),
        demo=True,
        unconfigured=config.unconfigured,
    )
