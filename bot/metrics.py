"""Prometheus metrics of one creditbot process (a registry per runtime, served at `GET /metrics`), and who may
read them."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.breakdown import BreakdownPart
from bot.breakdown_table import month_costs
from bot.models import AccountView

if TYPE_CHECKING:
    from bot.config import Settings

TOP_MODELS = 10  # models per account in creditbot_spend_by_model: label sets stay bounded

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_access(settings: Settings) -> str:
    """Who may read `/metrics`, and how to change it: said at start-up and by `creditbot doctor`."""
    if settings.metrics_token is not None:
        return "/metrics needs the token of CREDITBOT_METRICS_TOKEN (Authorization: Bearer ...)"
    if settings.metrics_public:
        return (
            "/metrics is open to anyone who reaches PORT (CREDITBOT_METRICS_PUBLIC=true): keep the listener on a "
            "private network, or set CREDITBOT_METRICS_TOKEN"
        )
    return "/metrics is off (404): set CREDITBOT_METRICS_TOKEN to scrape it with a bearer token"


def metrics_status(settings: Settings, authorization: str | None) -> int:
    """The HTTP status of a `/metrics` request: 200 to serve, 401 without the right token, 404 when off."""
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        # Compared in constant time, so the answer's timing says nothing about how much of a guess was right.
        return 200 if hmac.compare_digest((authorization or "").encode(), expected) else 401
    return 200 if settings.metrics_public else 404


class Metrics:
    """Balances, spend, fetches, alerts, deliveries and command latency; labels never carry secrets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        account = ["account", "provider", "currency"]
        self.balance = Gauge(
            "creditbot_balance", "Balance left (reported, estimated or key limit)", account, registry=self.registry
        )
        self.spent_month = Gauge(
            "creditbot_spent_month", "Spend this calendar month (UTC)", account, registry=self.registry
        )
        self.budget = Gauge("creditbot_monthly_budget", "Monthly budget", account, registry=self.registry)
        self.burn = Gauge(
            "creditbot_burn_per_day", "Spend per day (recent average)", account, registry=self.registry
        )
        self.days_left = Gauge(
            "creditbot_days_left", "Days until the balance runs out", account, registry=self.registry
        )
        self.stale = Gauge(
            "creditbot_reading_stale",
            "1 when the shown reading is older than the last attempt",
            ["account", "provider"],
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "creditbot_fetch_duration_seconds",
            "Time to fetch one account",
            ["provider"],
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.fetch_failures = Counter(
            "creditbot_fetch_failures", "Failed fetches", ["provider", "kind"], registry=self.registry
        )
        self.alerts = Counter(
            "creditbot_alerts", "Alert events", ["rule", "severity", "kind"], registry=self.registry
        )
        self.deliveries = Counter(
            "creditbot_deliveries", "Delivery attempts", ["platform", "outcome"], registry=self.registry
        )
        self.command_seconds = Histogram(
            "creditbot_command_duration_seconds",
            "Time to answer a chat command",
            ["platform"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.spend_by_model = Gauge(
            "creditbot_spend_by_model",
            f"Spend this calendar month (UTC) per model, the top {TOP_MODELS} of each account",
            ["account", "currency", "model"],
            registry=self.registry,
        )
        self._model_labels: set[tuple[str, str, str]] = set()

    def observe_views(self, views: Sequence[AccountView]) -> None:
        """Set the money gauges from the current views (unknown values are removed, never shown as 0)."""
        for view in views:
            labels = (view.name, view.account.provider, view.currency or "")
            for gauge, value in (
                (self.balance, view.balance.amount if view.balance else None),
                (self.spent_month, view.spent_month.amount if view.spent_month else None),
                (self.budget, view.monthly_budget.amount if view.monthly_budget else None),
                (self.burn, view.burn_rate.amount if view.burn_rate else None),
                (self.days_left, view.days_left),
            ):
                if value is None:
                    with contextlib.suppress(KeyError):
                        gauge.remove(*labels)
                else:
                    gauge.labels(*labels).set(float(value))
            self.stale.labels(view.name, view.account.provider).set(1 if view.stale else 0)

    def observe_models(
        self,
        parts: Mapping[str, Sequence[BreakdownPart]],
        currencies: Mapping[str, str | None],
        month_start: date,
    ) -> None:
        """Set `creditbot_spend_by_model` from each account's parts by model of this month, in the currency of
        its newest answered day; label sets no longer among an account's top models, or of accounts no longer
        given, are removed, so no stale series stays behind."""
        current: dict[tuple[str, str, str], Decimal] = {}
        for account, mine in parts.items():
            currency = currencies.get(account)
            if currency is None:
                continue
            for model, cost in month_costs(mine, month_start, top=TOP_MODELS).items():
                current[(account, currency, model)] = cost
        for labels in self._model_labels - current.keys():
            with contextlib.suppress(KeyError):
                self.spend_by_model.remove(*labels)
        for labels, cost in current.items():
            self.spend_by_model.labels(*labels).set(float(cost))
        self._model_labels = set(current)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
