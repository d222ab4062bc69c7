"""What `creditbot doctor` says about Slack (the bot token, the app token, the mode), and the settings check
that both the doctor and the adapter make."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.socket import SlackUnreachable, try_app_token
from bot.adapter import AdapterConfigError

if TYPE_CHECKING:
    from bot.config import Settings


def signing_secret_problem(settings: Settings) -> str | None:
    """Why HTTP mode cannot verify Slack's requests, if it cannot (Socket Mode needs no signing secret)."""
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        return "Slack HTTP mode needs SLACK_SIGNING_SECRET (Basic Information > App Credentials)"
    return None


async def check_slack(settings: Settings) -> list[str]:
    """The bot token (auth.test), then the app token in Socket Mode (apps.connections.open), one line each;
    "!" marks a problem."""
    assert settings.slack_bot_token is not None
    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        return [
            f"! the bot token was refused ({exc.response.get('error')}); copy the Bot User OAuth Token "
            "(xoxb-...) from OAuth & Permissions into SLACK_BOT_TOKEN"
        ]
    except Exception as exc:
        return [f"! Slack is unreachable ({type(exc).__name__})"]
    mode, problems = "HTTP mode (POST /slack/events)", []
    if settings.slack_app_token is not None:
        mode = "Socket Mode"
        try:
            # Only asks for a connection URL: nothing connects, so a running bot is not disturbed.
            await try_app_token(client, settings.slack_app_token.get_secret_value())
            mode += " (app token accepted)"
        except AdapterConfigError as exc:
            problems.append(f"! {exc}")
        except SlackUnreachable as exc:
            problems.append(f"! the app token could not be tried: Slack is unreachable ({exc})")
    problem = signing_secret_problem(settings)
    if problem:
        problems.append(f"! {problem}")
    return [f"ok, team {auth.get('team')} ({auth.get('team_id')}), {mode}", *problems]
