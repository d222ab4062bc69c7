"""Configuration: discovery, the TOML contract, ${VAR} expansion and clear errors."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_config, load_settings, mask_secret

SECRET = "sk-admin-CANARYsecret0123456789"


def settings(tmp_path: Path, toml: str | None = None, **env: str) -> Settings:
    path = tmp_path / "creditbot.toml"
    if toml is not None:
        path.write_text(toml)
    return Settings(_env_file=None, CREDITBOT_CONFIG=str(path) if toml is not None else None, **env)  # type: ignore[call-arg]


def test_discovery_creates_one_account_per_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = settings(
        tmp_path,
        OPENAI_ADMIN_KEY=SECRET,
        DEEPSEEK_API_KEY="sk-ds-123456",
        MOONSHOT_API_KEY="sk-ms-123456",
        MOONSHOT_BASE_URL="https://api.moonshot.cn",
    )
    config = load_config(s, environ={})
    assert [(a.name, a.provider) for a in config.accounts] == [
        ("openai", "openai"),
        ("deepseek", "deepseek"),
        ("moonshot", "moonshot"),
    ]
    moonshot = config.account("moonshot")
    assert moonshot is not None
    assert (moonshot.base_url, moonshot.currency) == ("https://api.moonshot.cn", "CNY")
    assert config.account("openai").origin == "env OPENAI_ADMIN_KEY"  # type: ignore[union-attr]


def test_moonshot_discovery_defaults_to_international_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(settings(tmp_path, MOONSHOT_API_KEY="sk-ms-123456"), environ={})
    account = config.accounts[0]
    assert account.base_url == "https://api.moonshot.ai"
    assert account.currency is None  # the provider derives USD from the host


TOML = """
[[accounts]]
name = "openai-main"
provider = "openai"
api_key = "${OPENAI_ADMIN_KEY}"
base_url = "https://api.openai.com"
currency = "USD"
prepaid_credit = "50.00"
prepaid_since = "2026-10-15"
monthly_budget = "100"
warn_below = 20
critical_below = 5.5

[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "sk-literal-key-123"
"""


def test_toml_contract_and_discovery_off(tmp_path: Path) -> None:
    s = settings(tmp_path, TOML, OPENAI_ADMIN_KEY=SECRET)
    config = load_config(s, environ={"OPENAI_ADMIN_KEY": SECRET})
    assert [a.name for a in config.accounts] == ["openai-main", "ds"]  # no extra "openai" account
    main = config.accounts[0]
    assert main.api_key.get_secret_value() == SECRET
    assert main.prepaid_credit is not None
    assert main.prepaid_credit.amount == Decimal("50.00")
    assert main.prepaid_since.isoformat() == "2026-10-15"  # type: ignore[union-attr]
    assert (main.monthly_budget, main.warn_below, main.critical_below) == (
        Decimal(100),
        Decimal(20),
        Decimal("5.5"),
    )
    assert config.accounts[1].base_url == "https://api.deepseek.com"
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[[accounts]\nname=", "not valid TOML"),
        (
            '[[accounts]]\nname="a"\nprovider="foo"\napi_key="k"',
            "accounts[0] 'a': provider: unknown provider 'foo'",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="openai"\napi_key="${MISSING_VAR}"',
            "accounts[0] 'a': api_key: environment variable MISSING_VAR is not set",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="deepseek"\napi_key="k"\n[[accounts]]\nname="A"\nprovider="deepseek"\n'
            'api_key="k"',
            "accounts[1] 'A': name: 'A' is already used by accounts[0]",
        ),
        (
            '[[accounts]]\nname="help"\nprovider="deepseek"\napi_key="k"',
            "'help' is a command word (credits help); rename the account",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nmonthly_budget="-3"',
            "monthly_budget: must not be",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nbase_url="file:///etc/passwd"',
            "base_url: must start with http:// or https://",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nbase_url="https://x/../../admin"',
            "base_url: must not contain '..'",
        ),
        ('[[accounts]]\nname="a b"\nprovider="openai"\napi_key="k"', "name: use 1 to 64 letters"),
        ('[[accounts]]\nname="a"\nprovider="openai"', "api_key: is required"),
        ('[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nprepaid_credit="5"', "set both or neither"),
        ('[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nwarn_bellow="5"', "warn_bellow: is not a known"),
        (
            '[[accounts]]\nname="a"\nprovider="deepseek"\napi_key="k"\nprepaid_credit="5"\nprepaid_since=2026-01-01',
            "prepaid_credit is for spend-only providers",
        ),
        ('accounts = "x"', "'accounts' must be a list"),
    ],
)
def test_configuration_errors_name_file_account_and_field(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(settings(tmp_path, toml), environ={})
    text = "\n".join(caught.value.problems)
    assert expected in text
    assert str(tmp_path / "creditbot.toml") in text


def test_every_problem_is_reported_at_once_without_the_secret(tmp_path: Path) -> None:
    toml = (
        f'[[accounts]]\nname="a"\nprovider="nope"\napi_key="{SECRET}"\n'
        '[[accounts]]\nname="b"\nprovider="openai"\napi_key="${NOT_SET}"\nwarn_below="x"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(settings(tmp_path, toml), environ={})
    assert len(caught.value.problems) == 3
    assert SECRET not in str(caught.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    s = Settings(_env_file=None, CREDITBOT_CONFIG=str(tmp_path / "nope.toml"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(s, environ={})


def test_settings_defaults_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITBOT_STALE_AFTER", "12h")
    monkeypatch.setenv("CREDITBOT_FETCH_TIMEOUT", "2.5")
    monkeypatch.setenv("CREDITBOT_LOG_FORMAT", "JSON")
    s = load_settings(_env_file=None)
    assert s.stale_after == timedelta(hours=12)
    assert s.fetch_timeout == timedelta(seconds=2.5)
    assert (s.concurrency, s.per_host_concurrency, s.retention_days, s.cache_seconds) == (16, 4, 400, 60)
    assert s.log_format == "json"


def test_bad_settings_are_config_errors_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITBOT_CONCURRENCY", "0")
    monkeypatch.setenv("CREDITBOT_STALE_AFTER", "soon")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    text = "\n".join(caught.value.problems)
    assert "CREDITBOT_CONCURRENCY" in text
    assert "CREDITBOT_STALE_AFTER: must be a duration" in text


def test_env_file_values_feed_var_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    (tmp_path / ".env").write_text(f"OPENAI_ADMIN_KEY={SECRET}\n")
    (tmp_path / "creditbot.toml").write_text(
        '[[accounts]]\nname="o"\nprovider="openai"\napi_key="${OPENAI_ADMIN_KEY}"\n'
    )
    config = load_config(Settings(_env_file=tmp_path / ".env"))  # type: ignore[call-arg]
    assert config.accounts[0].api_key.get_secret_value() == SECRET


def test_masked_key_never_shows_the_tail() -> None:
    masked = mask_secret(SECRET)
    assert SECRET[-6:] not in masked
    assert masked.startswith("sk-admin-")


NEW_SOURCES = {
    "SILICONFLOW_API_KEY": ("siliconflow", "https://api.siliconflow.com"),
    "NOVITA_API_KEY": ("novita", "https://api.novita.ai"),
    "XAI_MANAGEMENT_KEY": ("xai", "https://management-api.x.ai"),
    "VENICE_API_KEY": ("venice", "https://api.venice.ai"),
    "STEPFUN_API_KEY": ("stepfun", "https://api.stepfun.com"),
    "DEEPINFRA_API_KEY": ("deepinfra", "https://api.deepinfra.com"),
    "ELEVENLABS_API_KEY": ("elevenlabs", "https://api.elevenlabs.io"),
}


@pytest.mark.parametrize("variable", sorted(NEW_SOURCES))
def test_each_new_source_is_discovered_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(settings(tmp_path, **{variable: "sk-new-source-123456"}), environ={})
    name, host = NEW_SOURCES[variable]
    assert [(a.name, a.provider, a.base_url, a.origin) for a in config.accounts] == [
        (name, name, host, f"env {variable}")
    ]


def test_a_relay_is_discovered_with_its_address_and_never_from_openai_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = load_config(
        settings(tmp_path, RELAY_API_KEY="sk-relay-123456", RELAY_BASE_URL="https://relay.example.com/v1"),
        environ={},
    )
    assert [(a.name, a.provider, a.base_url) for a in found.accounts] == [
        ("relay", "relay", "https://relay.example.com")
    ]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")  # vLLM, Ollama, LiteLLM: no billing there
    with pytest.raises(ConfigError, match="RELAY_API_KEY is set but RELAY_BASE_URL is not"):
        load_config(settings(tmp_path, RELAY_API_KEY="sk-relay-123456"), environ={})
