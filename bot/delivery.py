"""Delivery: the outbox dispatcher. Channels in parallel, each channel in order; claim, send, mark; failures
wait and retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.adapter import Adapter, DeliveryError
from bot.clock import Clock
from bot.formatting import time_text
from bot.messages import Message, text_message
from bot.metrics import Metrics
from bot.store import NewMessage, OutboxItem, Store

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)  # a claim older than this was abandoned (crash between claim and send)
MAX_ATTEMPTS = 12


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Back-off before the next delivery attempt: the platform's wish, else 30 s doubling up to an hour."""
    if retry_after is not None:
        return timedelta(seconds=max(1.0, retry_after))
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def alert_account(item: OutboxItem) -> str:
    """The account an alert message is about."""
    account = item.message.get("account")
    if isinstance(account, str):
        return account
    # Alerts queued by versions before the account was stored beside the message: it is in the key
    # (`alert:<platform>:<channel>:<account>:...`).
    parts = item.key.split(":")
    return parts[3] if len(parts) > 3 else ""


@dataclass
class Delivery:
    """Sends what the outbox holds through the adapters, in order per channel, at most once per claim."""

    store: Store
    adapters: Mapping[str, Adapter]
    clock: Clock
    metrics: Metrics
    concurrency: int
    # Platforms without the setting their adapter needs (platform: that setting): nothing can reach them.
    unconfigured: Mapping[str, str] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def send_test(self, label: str, platform: str, channel: str) -> str:
        """Queue and deliver a test message to a channel; returns its outbox key."""
        now = self.clock()
        message = replace(
            text_message("creditbot test message", f"Delivery to {label} works ({time_text(now)})."), kind="test"
        )
        key = f"test:{label}:{now.isoformat()}"
        await self.store.outbox.enqueue(
            NewMessage(key, platform, channel, "test", "info", message.to_json(), now), now=now
        )
        await self.dispatch(keys={key})
        return key

    async def dispatch(self, keys: Collection[str] | None = None) -> int:
        """Deliver due outbox messages: channels in parallel (bounded), each channel in order; claim, send,
        mark; failures wait and retry.

        A message waiting for a retry holds back the later ones of its channel, so a recovery never
        arrives before the alert it closes. `keys` limits the run to those messages (CLI commands).
        """
        async with self._lock:
            now = self.clock()
            snoozed = await self.store.settings.snoozed_until(now)
            # A message claimed within its lease may be in flight (or its sender died mid-send): the rest of
            # its channel waits, so that a recovery never overtakes its alert after a crash.
            busy = await self.store.outbox.claimed_channels(now - CLAIM_LEASE)
            queues: dict[tuple[str, str], list[OutboxItem]] = {}
            for item in await self.store.outbox.open_messages(now, CLAIM_LEASE):
                if keys is not None and item.key not in keys:
                    continue
                if item.platform in self.unconfigured:
                    await self._fail_unconfigured(item)
                    continue
                if item.platform not in self.adapters:
                    continue  # another process (Discord's gateway runs on `creditbot run` alone) sends it
                if (item.platform, item.channel) not in busy:
                    queues.setdefault((item.platform, item.channel), []).append(item)
            # The adapters pace their calls to the platform's limits; parallel channels keep those limits
            # busy instead of waiting for one round trip after another.
            slots = asyncio.Semaphore(self.concurrency)

            async def drain(items: list[OutboxItem]) -> int:
                async with slots:
                    return await self._drain_channel(items, now, snoozed)

            # Every channel finishes before the lock is released, even when one of them fails.
            results = await asyncio.gather(*(drain(items) for items in queues.values()), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            return sum(r for r in results if isinstance(r, int))

    async def _fail_unconfigured(self, item: OutboxItem) -> None:
        # A channel subscribed from chat whose platform has lost its credentials: waiting would never end.
        if await self.store.outbox.claim(item, self.clock(), CLAIM_LEASE):
            reason = f"{item.platform} is not configured: {self.unconfigured[item.platform]} is not set"
            await self.store.outbox.mark_failed(item.id, reason, None)
            self.metrics.deliveries.labels(item.platform, "failed").inc()

    async def _drain_channel(self, items: Sequence[OutboxItem], now: datetime, snoozed: Collection[str]) -> int:
        sent = 0
        for item in items:
            if item.status == "pending" and item.not_before > now:
                if item.attempts > 0:
                    break  # a retry's back-off holds back the rest of the channel
                continue  # not due yet (quiet hours)
            if item.kind == "alert" and alert_account(item) in snoozed:
                await self.store.outbox.mark_skipped(item.id, "snoozed")
                continue
            if not await self.store.outbox.claim(item, self.clock(), CLAIM_LEASE):
                continue
            delivered = await self._deliver(item)
            sent += delivered
            if not delivered:
                break
        return sent

    async def _deliver(self, item: OutboxItem) -> int:
        adapter = self.adapters[item.platform]
        attempts = item.attempts + 1
        try:
            await adapter.send(item.channel, Message.from_json(item.message), key=item.key)
        except DeliveryError as exc:
            give_up = exc.permanent or attempts >= MAX_ATTEMPTS
            retry_at = None if give_up else self.clock() + retry_delay(attempts, exc.retry_after)
            await self.store.outbox.mark_failed(item.id, str(exc), retry_at)
            self.metrics.deliveries.labels(item.platform, "failed" if give_up else "retry").inc()
            log.warning(
                "delivery of %s to %s:%s failed (attempt %d)%s: %s",
                item.kind,
                item.platform,
                item.channel,
                attempts,
                "" if give_up else f", retrying at {retry_at:%H:%M:%S}",
                exc,
            )
            return 0
        except Exception as exc:  # an adapter bug must not stop the other deliveries
            log.exception("delivery of %s to %s:%s crashed", item.kind, item.platform, item.channel)
            retry_at = None if attempts >= MAX_ATTEMPTS else self.clock() + retry_delay(attempts, None)
            await self.store.outbox.mark_failed(item.id, f"{type(exc).__name__}", retry_at)
            return 0
        await self.store.outbox.mark_sent(item.id, self.clock())
        self.metrics.deliveries.labels(item.platform, "sent").inc()
        return 1
