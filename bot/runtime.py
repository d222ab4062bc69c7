"""The long-running bot: polling, alert evaluation, daily summaries and the delivery outbox on a scheduler."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bot.adapter import Adapter, DeliveryError
from bot.alerts import evaluate, open_alerts
from bot.channels import Channel, parse_clock
from bot.clock import Clock, system_clock
from bot.config import AppConfig
from bot.handler import CommandHandler
from bot.leader import Leadership
from bot.messages import Message, alert_message, alert_title, summary_message, text_message
from bot.models import AccountView, AlertEvent, AlertKind, AlertSettings, AlertState, Rule, Severity, SourceHealth
from bot.money import Money
from bot.monitor import Monitor
from bot.store import OutboxItem, Store, database_problem, is_database_error

log = logging.getLogger(__name__)

LEADER_CHECK_SECONDS = 5.0
CLAIM_LEASE = timedelta(minutes=10)  # a claim older than this was abandoned (crash between claim and send)
MAX_ATTEMPTS = 12
SUMMARY_GRACE = 3600
# A summary missed while the bot was down is sent at start if it fell due this recently (across midnight
# too), or if the bot was already running before it fell due; a new install does not post yesterday's.
CATCH_UP_WINDOW = timedelta(hours=12)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Back-off before the next delivery attempt: the platform's wish, else 30 s doubling up to an hour."""
    if retry_after is not None:
        return timedelta(seconds=max(1.0, retry_after))
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def state_from_row(row: dict[str, Any]) -> AlertState:
    """An AlertState from its stored row."""
    return AlertState(
        account=row["account"],
        rule=Rule(row["rule"]),
        level=row["level"],
        fired_level=row["fired_level"],
        episode=row["episode"],
        period=row["period"],
        since=row["since"],
        notified_at=row["notified_at"],
        reminders=row["reminders"],
        detail=row["detail"],
        peak_level=row["peak_level"],
        suppressed=bool(row["suppressed"]),
    )


def state_to_row(state: AlertState) -> dict[str, Any]:
    """The stored row of an AlertState."""
    return {
        "account": state.account,
        "rule": state.rule.value,
        "level": state.level,
        "fired_level": state.fired_level,
        "episode": state.episode,
        "period": state.period,
        "since": state.since,
        "notified_at": state.notified_at,
        "reminders": state.reminders,
        "detail": state.detail,
        "peak_level": state.peak_level,
        "suppressed": state.suppressed,
    }


@dataclass
class SummaryParts:
    """What the summaries of one fan-out share: views and chart per set of accounts, and the open alerts."""

    views: dict[tuple[str, ...], tuple[list[AccountView], bytes | None]] = field(default_factory=dict)
    open_alerts: dict[str, list[str]] | None = None
    last_sent: dict[tuple[str, str], OutboxItem] | None = None  # each channel's previous summary


class Runtime:
    """Wires the monitor, the alert rules, the outbox and the adapters together under one scheduler."""

    def __init__(
        self,
        config: AppConfig,
        store: Store,
        http: httpx.AsyncClient,
        adapters: Sequence[Adapter],
        *,
        clock: Clock = system_clock,
        charts: Callable[[Sequence[AccountView]], Awaitable[bytes | None]] | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.store = store
        self.clock = clock
        self.monitor = Monitor(config, store, http, clock=clock)
        self.adapters = {adapter.platform: adapter for adapter in adapters}
        self.charts = charts or self._no_chart
        self.handler = CommandHandler(
            self.monitor,
            store,
            charts=self.charts,
            on_subscriptions_changed=self.reschedule,
            default_timezone=self.settings.timezone,
            default_summary_time=self.settings.summary_time,
        )
        self.alert_settings = AlertSettings(
            runway_warn_days=self.settings.runway_warn_days,
            failures_before_alert=self.settings.failures_before_alert,
            hysteresis=self.settings.hysteresis,
            spike_min=self.settings.spike_min,
            reminder=self.settings.reminder_interval,
        )
        from bot.metrics import Metrics

        self.metrics = Metrics()
        self.monitor.metrics = self.metrics
        self.handler.metrics = self.metrics
        self.leadership = leadership  # None: this process always leads (tests, one-off commands)
        self.leading = False
        self.scheduler: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatch_lock = asyncio.Lock()
        self._poll_lock = asyncio.Lock()
        self._caught_up = False
        self._stopping = False
        self._store_problem: str | None = None  # the database failure last logged by readiness
        self.polls = 0

    @staticmethod
    async def _no_chart(_views: Sequence[AccountView]) -> bytes | None:
        return None

    # Channels

    async def channels(self) -> list[Channel]:
        """Channels from the TOML file plus those subscribed from chat (TOML wins on the same id)."""
        channels = list(self.config.channels)
        known = {c.key for c in channels}
        for sub in await self.store.subscriptions():
            channel = Channel(
                platform=sub.platform,
                id=sub.channel,
                daily_summary=parse_clock(sub.daily_summary) if sub.daily_summary else None,
                timezone=sub.timezone,
                alerts=None if sub.alerts == "none" else Severity(sub.alerts),
                source=f"subscribed by {sub.created_by}",
            )
            if channel.key not in known:
                channels.append(channel)
        return channels

    # Polling and alerts

    async def poll(self) -> list[AlertEvent]:
        """Fetch every account, evaluate the alert rules, queue what must be said, then deliver."""
        async with self._poll_lock:
            await self.monitor.refresh()
            views = await self.monitor.views(stored_only=True)
            self.metrics.observe_views(views)
            events = await self.evaluate_alerts(views)
            for event in events:
                self.metrics.alerts.labels(event.rule.value, event.severity.value, event.kind.value).inc()
            self.polls += 1
            await self.monitor.prune()
        if not self._caught_up:
            self._caught_up = True
            await self.catch_up()
        await self.dispatch()
        return events

    async def evaluate_alerts(self, views: Sequence[AccountView]) -> list[AlertEvent]:
        """Run the rules over fresh views, persist the new states and queue the resulting messages."""
        now = self.clock()
        stored: dict[str, dict[Rule, AlertState]] = {}
        for row in await self.store.alert_states():
            state = state_from_row(row)
            stored.setdefault(state.account, {})[state.rule] = state
        latest = await self.store.latest_readings(v.name for v in views)
        snoozed = await self.store.snoozed_until(now)
        all_states: list[AlertState] = []
        all_events: list[AlertEvent] = []
        for view in views:
            last = latest[view.name].latest
            ok = last is not None and last.ok
            health = SourceHealth(
                latest_ok=ok,
                failure_streak=0 if ok else await self.store.failure_streak(view.name),
                latest_error=None if ok or last is None else last.error,
                latest_error_kind=None if ok or last is None else last.error_kind,
            )
            states, events = evaluate(
                view, health, stored.get(view.name, {}), self.alert_settings, now, snoozed=view.name in snoozed
            )
            all_states.extend(states)
            all_events.extend(events)
            for event in events:
                log.info(
                    "alert %s %s for %s: %s",
                    event.kind.value,
                    event.rule.value,
                    event.account,
                    alert_title(event, view),
                )
        # Queue before saving the states: after a crash in between, the same events come again and their
        # unique keys make the second queueing a no-op, whereas the other order would lose them.
        if all_events:
            await self._queue_alerts(all_events, {v.name: v for v in views}, now)
        await self.store.save_alert_states([state_to_row(s) for s in all_states], now)
        return all_events

    async def _queue_alerts(
        self, events: Sequence[AlertEvent], views: dict[str, AccountView], now: datetime
    ) -> None:
        channels = await self.channels()
        for event in events:
            message = alert_message(event, views[event.account])
            for channel in channels:
                if not channel.includes(event.account) or not channel.wants(event.routing_severity):
                    continue
                not_before = now
                if event.severity is not Severity.CRITICAL:
                    not_before = channel.quiet_until(now) or now
                addressed = (
                    message.with_mentions([channel.mention])
                    if channel.mention and event.kind is not AlertKind.RECOVERED
                    else message
                )
                await self.store.enqueue(
                    f"alert:{channel.key}:{event.key}",
                    channel.platform,
                    channel.id,
                    "alert",
                    event.severity.value,
                    addressed.to_json(),
                    not_before,
                    now,
                )

    # Summaries

    async def summary_message(
        self, channel: Channel | None = None, *, shared: SummaryParts | None = None
    ) -> tuple[Message, dict[str, Any]]:
        """The daily summary for a channel (or all accounts), and the values to compare with next time.

        `shared` carries what channels with the same accounts have in common (views, chart, open alerts), so
        a fan-out to many channels reads and draws them once.
        """
        shared = shared if shared is not None else SummaryParts()
        names = [a.name for a in self.monitor.accounts()]
        if channel is not None:
            names = channel.visible(names)
        group = tuple(names)
        if group not in shared.views:
            views = await self.monitor.views(names)
            shared.views[group] = (views, await self.charts(views))
        views, chart = shared.views[group]
        if shared.open_alerts is None:
            shared.open_alerts = open_alerts([state_from_row(r) for r in await self.store.alert_states()])
        previous: dict[str, Money] = {}
        if channel is not None:
            if shared.last_sent is None:
                shared.last_sent = await self.store.latest_sent_per_channel("summary")
            last = shared.last_sent.get((channel.platform, channel.id))
            for name, value in ((last.message.get("values") or {}) if last else {}).items():
                previous[name] = Money(Decimal(value[0]), value[1])
        message = summary_message(views, self.clock(), previous, shared.open_alerts, chart)
        values = {}
        for view in views:
            value = view.balance if view.balance is not None else view.spent_month
            if value is not None:
                values[view.name] = [str(value.amount), value.currency]
        return message, values

    async def send_summary(self, channel: Channel, *, day: str | None = None) -> bool:
        """Queue and deliver the summary of one channel for its local day; False if it was already queued."""
        return await self.send_summaries([channel], day=day) == 1

    async def send_summaries(self, channels: Sequence[Channel], *, day: str | None = None) -> int:
        """Queue the summaries of several channels for their local day, then deliver them in one fan-out.

        Returns how many were newly queued (a channel whose summary for that day exists is skipped).
        """
        now = self.clock()
        shared = SummaryParts()
        keyed = {}
        for channel in channels:
            channel_day = day
            if channel_day is None:
                # Keyed by the day it fell due, so a run delayed past midnight is still that day's summary.
                due = channel.last_due(now)
                channel_day = channel.summary_date(due if due is not None else now)
            keyed[f"summary:{channel.key}:{channel_day}"] = channel
        existing = await self.store.existing_keys(keyed)
        queue = []
        for key, channel in keyed.items():
            if key in existing:
                continue
            try:
                message, values = await self.summary_message(channel, shared=shared)
            except Exception:  # one channel's failure must not cost the others their summary
                log.exception("the summary for %s could not be built; it is tried again on the next run", key)
                continue
            queue.append(
                {
                    "key": key,
                    "platform": channel.platform,
                    "channel": channel.id,
                    "kind": "summary",
                    "severity": message.severity.value,
                    "message": {**message.to_json(), "values": values},
                    "not_before": now,
                }
            )
        keys = await self.store.enqueue_many(queue, now)
        if keys:
            log.info("daily summary queued for %d channel(s)", len(keys))
            await self.dispatch(keys=set(keys))
        return len(keys)

    async def catch_up(self) -> None:
        """Send once any summary that fell due today (local time) while the bot was down."""
        now = self.clock()
        missed = []
        for channel in await self.channels():
            due = channel.last_due(now)
            if due is None:
                continue
            # Recent enough, or the bot was already at work before it fell due (it was down meanwhile).
            if now - due <= CATCH_UP_WINDOW or await self.store.has_readings_before(due):
                missed.append(channel)
        if missed:
            await self.send_summaries(missed)

    async def notify_test(self, channel: Channel) -> str:
        """Queue and deliver a test message to a channel; returns its outbox key."""
        now = self.clock()
        message = text_message(
            "creditbot test message", f"Delivery to {channel.key} works ({now:%Y-%m-%d %H:%M} UTC)."
        )
        key = f"test:{channel.key}:{now.isoformat()}"
        await self.store.enqueue(key, channel.platform, channel.id, "test", "info", message.to_json(), now, now)
        await self.dispatch(keys={key})
        return key

    # Delivery

    async def dispatch(self, keys: Collection[str] | None = None) -> int:
        """Deliver due outbox messages: channels in parallel (bounded), each channel in order; claim, send,
        mark; failures wait and retry.

        A message waiting for a retry holds back the later ones of its channel, so a recovery never
        arrives before the alert it closes. `keys` limits the run to those messages (CLI commands).
        """
        async with self._dispatch_lock:
            now = self.clock()
            snoozed = await self.store.snoozed_until(now)
            # A message claimed within its lease may be in flight (or its sender died mid-send): the rest of
            # its channel waits, so that a recovery never overtakes its alert after a crash.
            busy = await self.store.claimed_channels(now - CLAIM_LEASE)
            queues: dict[tuple[str, str], list[OutboxItem]] = {}
            for item in await self.store.open_messages(now, CLAIM_LEASE):
                if (keys is not None and item.key not in keys) or item.platform not in self.adapters:
                    continue  # another process, or a later start with that platform configured, sends it
                if (item.platform, item.channel) not in busy:
                    queues.setdefault((item.platform, item.channel), []).append(item)
            # The adapters pace their calls to the platform's limits; parallel channels keep those limits
            # busy instead of waiting for one round trip after another.
            slots = asyncio.Semaphore(self.settings.delivery_concurrency)

            async def drain(items: list[OutboxItem]) -> int:
                async with slots:
                    return await self._drain_channel(items, now, snoozed)

            # Every channel finishes before the lock is released, even when one of them fails.
            results = await asyncio.gather(*(drain(items) for items in queues.values()), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            return sum(r for r in results if isinstance(r, int))

    async def _drain_channel(self, items: Sequence[OutboxItem], now: datetime, snoozed: Collection[str]) -> int:
        sent = 0
        for item in items:
            if item.status == "pending" and item.not_before > now:
                if item.attempts > 0:
                    break  # a retry's back-off holds back the rest of the channel
                continue  # not due yet (quiet hours)
            if item.kind == "alert" and alert_account(item.key) in snoozed:
                await self.store.mark_skipped(item.id, "snoozed")
                continue
            if not await self.store.claim(item, self.clock(), CLAIM_LEASE):
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
            await self.store.mark_failed(item.id, str(exc), retry_at)
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
            await self.store.mark_failed(item.id, f"{type(exc).__name__}", retry_at)
            return 0
        await self.store.mark_sent(item.id, self.clock())
        self.metrics.deliveries.labels(item.platform, "sent").inc()
        return 1

    # Health and metrics

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready when the store answers and every adapter this process runs is connected."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.store.ping(), timeout=3)
            checks["store"] = "ok"
            self._store_problem = None
        except Exception as exc:  # any failure means not ready; the reason is reported, not raised
            # /readyz is public (same port as Slack's HTTP mode): it names the kind of failure only, and
            # the full line (URL without password, what to do) goes to the log once per change.
            checks["store"] = f"unreachable: {'damaged file' if self.store.damaged else type(exc).__name__}"
            problem = database_problem(self.settings.database_url, exc)
            if problem != self._store_problem:
                log.error("not ready: %s", problem)
                self._store_problem = problem
        for platform, adapter in self.adapters.items():
            if self._runs(adapter):  # a follower is ready without the leader-only Discord gateway
                checks[platform] = "ok" if adapter.connected() else "not connected"
        return all(v == "ok" for v in checks.values()), checks

    def http_routes(self) -> list[Any]:
        """`GET /readyz` and `GET /metrics` for the runtime's HTTP listener."""
        from aiohttp import web

        from bot.metrics import CONTENT_TYPE

        async def readyz(_request: web.Request) -> web.Response:
            ready, checks = await self.readiness()
            return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

        return [("GET", "/readyz", readyz), ("GET", "/metrics", metrics)]

    # Scheduling and lifecycle

    async def _job(self, name: str, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_database_error(exc):  # one line per run while the database is away, not a traceback
                log.error(
                    "%s failed; it runs again on schedule: %s",
                    name,
                    database_problem(self.settings.database_url, exc),
                )
            else:
                log.exception("%s failed; it runs again on schedule", name)
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _runs(self, adapter: Adapter) -> bool:
        # Leader-only adapters (the Discord gateway: one session per shard) run on the leader alone.
        return self.leading or not getattr(adapter, "leader_only", False)

    async def start(self) -> None:
        """Start the adapters that every replica runs and the scheduler; lead at once or keep trying."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        for adapter in self.adapters.values():
            if not getattr(adapter, "leader_only", False):
                await adapter.start(self.handler)
        self.scheduler = AsyncIOScheduler(
            timezone=ZoneInfo("UTC"),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": SUMMARY_GRACE},
        )
        self.scheduler.start()
        await self._lead()
        # A follower takes over within one poll interval of the leader's death (the lock frees at once).
        every = max(1.0, min(self.settings.poll_seconds, LEADER_CHECK_SECONDS))
        self.scheduler.add_job(
            self._job, IntervalTrigger(seconds=every), args=("leadership", self._lead), id="leadership"
        )

    async def _lead(self) -> None:
        if self.leadership is None:
            if not self.leading:
                await self._become_leader()
            return
        if not self.leading:
            if await self.leadership.try_acquire():
                await self._become_leader()
        elif not await self.leadership.check():
            await self._step_down()

    async def _become_leader(self) -> None:
        self.leading = True
        self._caught_up = False
        log.info("this process leads: polling, summaries and deliveries run here")
        for adapter in self.adapters.values():
            if getattr(adapter, "leader_only", False):
                await adapter.start(self.handler)
        await self.reschedule()

    async def _step_down(self) -> None:
        log.error("lost the lead: scheduled work stops here until the lead is regained")
        self.leading = False
        if self.scheduler is not None:
            for job in self.scheduler.get_jobs():
                if job.id != "leadership":
                    job.remove()
        for adapter in self.adapters.values():
            if getattr(adapter, "leader_only", False):
                await adapter.stop()

    async def reschedule(self) -> None:
        """(Re)create the jobs: polling, delivery, and one summary job per summary time (on the leader)."""
        if self.scheduler is None or not self.leading:
            return
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        poll = self.settings.poll_seconds
        if self.scheduler.get_job("poll") is None:
            self.scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=poll, jitter=min(poll / 10, 60)),
                args=("poll", self.poll),
                id="poll",
                next_run_time=datetime.now(ZoneInfo("UTC")),
            )
            self.scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=self.settings.dispatch_seconds),
                args=("dispatch", self.dispatch),
                id="dispatch",
            )
        for job in self.scheduler.get_jobs():
            if job.id.startswith("summary:"):
                job.remove()
        # Channels that share a summary time form one job and one fan-out.
        groups: dict[tuple[int, int, str], list[Channel]] = {}
        for channel in await self.channels():
            if channel.daily_summary is not None:
                when = (channel.daily_summary.hour, channel.daily_summary.minute, channel.timezone)
                groups.setdefault(when, []).append(channel)
        for (hour, minute, timezone), members in groups.items():
            self.scheduler.add_job(
                self._job,
                CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(timezone)),
                args=(f"summary {hour:02d}:{minute:02d} {timezone}", _summary_job(self, members)),
                id=f"summary:{hour:02d}:{minute:02d}:{timezone}",
                replace_existing=True,
            )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling, let running jobs and sends finish (up to a timeout), then stop the adapters."""
        self._stopping = True
        if self.scheduler is not None:
            # Pause first: shutting the scheduler down cancels the jobs it is running.
            self.scheduler.pause()
        await asyncio.sleep(0)  # jobs the scheduler just launched register themselves or see _stopping
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        for adapter in self.adapters.values():
            if not self._runs(adapter):
                continue
            try:
                await adapter.stop()
            except Exception:
                log.exception("stopping the %s adapter failed", adapter.platform)
        # Fetches started for chat answers that gave up waiting still store their readings.
        await asyncio.wait_for(self.monitor.aclose(), timeout=grace)
        if self.leadership is not None:
            await self.leadership.release()
        self.leading = False


def settle_heap() -> None:
    """Collect the garbage of start-up, then leave what survives out of later garbage collections.

    A running bot keeps hundreds of thousands of start-up objects (modules, SDK clients, the schema) that
    every full collection would scan again; frozen, they no longer add pauses to chat answers.
    """
    gc.collect()
    gc.freeze()


def _summary_job(runtime: Runtime, channels: Sequence[Channel]) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def job() -> None:
        await runtime.send_summaries(channels)

    return job


def alert_account(key: str) -> str:
    """The account of an alert outbox key (`alert:<platform>:<channel>:<account>:...`)."""
    parts = key.split(":")
    return parts[3] if len(parts) > 3 else ""
