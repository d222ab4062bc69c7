"""Provider clients, one module each, listed in a plain registry."""

from __future__ import annotations

from bot.providers.anthropic import AnthropicProvider
from bot.providers.base import Provider
from bot.providers.deepinfra import DeepInfraProvider
from bot.providers.deepseek import DeepSeekProvider
from bot.providers.demo import DemoProvider
from bot.providers.elevenlabs import ElevenLabsProvider
from bot.providers.http_json import HttpJsonProvider
from bot.providers.moonshot import MoonshotProvider
from bot.providers.novita import NovitaProvider
from bot.providers.openai import OpenAIProvider
from bot.providers.openai_legacy import OpenAILegacyProvider
from bot.providers.openrouter import OpenRouterProvider
from bot.providers.relay import RelayProvider
from bot.providers.siliconflow import SiliconFlowProvider
from bot.providers.stepfun import StepFunProvider
from bot.providers.venice import VeniceProvider
from bot.providers.xai import XAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    provider.name: provider
    for provider in (
        OpenAIProvider,
        OpenAILegacyProvider,
        AnthropicProvider,
        OpenRouterProvider,
        DeepSeekProvider,
        MoonshotProvider,
        RelayProvider,
        SiliconFlowProvider,
        NovitaProvider,
        XAIProvider,
        VeniceProvider,
        StepFunProvider,
        DeepInfraProvider,
        ElevenLabsProvider,
        HttpJsonProvider,
        DemoProvider,
    )
}
# The providers a configuration file may name and error messages offer (not the demo's simulation).
OFFERED = tuple(name for name, provider in PROVIDERS.items() if not provider.internal)
