"""The long-running bot's lifecycle: leadership, the schedule (poll, summaries, dispatch), readiness and a
clean stop. The work itself is in `alerting`, `summaries` and `delivery`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Collection, Coroutine, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.adapter import Adapter, AdapterUnavailable, Route
from bot.alerting import Alerting
from bot.channels import Channel, merge_subscriptions
from bot.delivery import CLAIM_LEASE, Delivery
from bot.handler import CommandHandler
from bot.leader import Leadership
from bot.messages import Message
from bot.metrics import CONTENT_TYPE, Metrics, metrics_status
from bot.models import AccountView, AlertEvent, AlertSettings, ChartMaker
from bot.monitor import Monitor
from bot.providers import PROVIDERS
from bot.store import database_problem, is_database_error
from bot.summaries import Summaries, SummaryParts

__all__ = ["CLAIM_LEASE", "Runtime", "settle_heap"]

log = logging.getLogger(__name__)

LEADER_CHECK_SECONDS = 5.0
CANCEL_WAIT = 2.0  # how long a cancelled job or a stopping adapter gets to finish what it is doing
SUMMARY_GRACE = 3600


class Runtime:
    """Runs the monitor, the alert rules, the summaries and the outbox under one scheduler, on the leader."""

    def __init__(
        self,
        monitor: Monitor,
        adapters: Sequence[Adapter],
        *,
        charts: ChartMaker | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.monitor = monitor
        self.config = monitor.config
        self.settings = monitor.settings
        self.store = monitor.store
        self.clock = monitor.clock
        self.adapters = {adapter.platform: adapter for adapter in adapters}
        self.metrics = Metrics()
        monitor.metrics = self.metrics
        charts = charts or _no_chart
        self.handler = CommandHandler(
            monitor,
            self.store,
            charts=charts,
            on_subscriptions_changed=self.reschedule,
            default_timezone=self.settings.timezone,
            default_summary_time=self.settings.summary_time,
            metrics=self.metrics,
        )
        alert_settings = AlertSettings(
            runway_warn_days=self.settings.runway_warn_days,
            failures_before_alert=self.settings.failures_before_alert,
            hysteresis=self.settings.hysteresis,
            spike_min=self.settings.spike_min,
            reminder=self.settings.reminder_interval,
        )
        # The parts read the time through the runtime, so that setting `runtime.clock` moves all of them.
        self.delivery = Delivery(
            self.store,
            self.adapters,
            clock=self.now,
            metrics=self.metrics,
            concurrency=self.settings.delivery_concurrency,
            unconfigured=self.config.unconfigured,
        )
        self.alerting = Alerting(
            self.store, alert_settings, self.channels, clock=self.now, breakdowns=monitor.breakdowns
        )
        self.summaries = Summaries(
            monitor, self.store, self.channels, self.delivery.dispatch, charts=charts, clock=self.now
        )
        self.leadership = leadership  # None: this process always leads (tests, one-off commands)
        self.leading = False
        self.scheduler: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._poll_lock = asyncio.Lock()
        self._caught_up = False
        self._stopping = False
        self._store_problem: str | None = None  # the database failure last logged by readiness
        self.polls = 0

    def stopping(self) -> bool:
        """True once `stop` has begun."""
        return self._stopping

    def now(self) -> datetime:
        """The runtime's current time."""
        return self.clock()

    async def channels(self) -> list[Channel]:
        """Channels from the TOML file plus those subscribed from chat (TOML wins on the same id)."""
        return merge_subscriptions(self.config.channels, await self.store.settings.subscriptions())

    async def poll(self) -> list[AlertEvent]:
        """Fetch every account, evaluate the alert rules, queue what must be said, then deliver."""
        async with self._poll_lock:
            await self.monitor.refresh()
            views = await self.monitor.views(stored_only=True)
            self.metrics.observe_views(views)
            events = await self.alerting.evaluate(views)
            for event in events:
                self.metrics.alerts.labels(event.rule.value, event.severity.value, event.kind.value).inc()
            self.polls += 1
            # Breakdowns and housekeeping run beside the schedule: their failure costs the poll nothing.
            if self._housekeeping is None or self._housekeeping.done():
                self._housekeeping = asyncio.create_task(self._job("housekeeping", self.monitor.upkeep))
        if not self._caught_up:
            self._caught_up = True
            await self.summaries.catch_up()
        await self.dispatch()
        return events

    async def dispatch(self, keys: Collection[str] | None = None) -> int:
        """Deliver what the outbox holds (see `Delivery.dispatch`)."""
        return await self.delivery.dispatch(keys)

    async def summary_message(self, channel: Channel | None = None) -> Message:
        """The daily summary for a channel (or all accounts)."""
        return await self.summaries.message(channel, shared=SummaryParts())

    async def send_summary(self, channel: Channel, *, day: str | None = None) -> bool:
        """Queue and deliver the summary of one channel for its local day; False if it was already queued."""
        return await self.summaries.send([channel], day=day) == 1

    async def send_summaries(self, channels: Sequence[Channel], *, day: str | None = None) -> int:
        """Queue the summaries of several channels for their local day and deliver them in one fan-out."""
        return await self.summaries.send(channels, day=day)

    async def notify_test(self, channel: Channel) -> str:
        """Queue and deliver a test message to a channel; returns its outbox key."""
        return await self.delivery.send_test(channel.key, channel.platform, channel.id)

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

    def http_routes(self) -> list[Route]:
        """`GET /readyz` and `GET /metrics` for the runtime's HTTP listener."""
        from aiohttp import web

        async def readyz(_request: web.Request) -> web.Response:
            ready, checks = await self.readiness()
            return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

        async def metrics(request: web.Request) -> web.Response:
            status = metrics_status(self.settings, request.headers.get("Authorization"))
            if status == 401:
                # Nothing about the metrics, not even whether the token was close.
                return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
            if status == 404:
                return web.Response(status=404, text="not found")
            # Balances as the store has them now: a top-up recorded by another process counts at once.
            self.metrics.observe_views(await self.monitor.views(stored_only=True))
            return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

        return [("GET", "/readyz", readyz), ("GET", "/metrics", metrics)]

    async def _job(self, name: str, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await factory()
        except asyncio.CancelledError:
            if self.stopping():
                # Cancelled by the stop after its grace: an expected end, not a crash to report.
                log.info("%s cancelled by the stop; what it had fetched is stored", name)
                return
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
        return self.leading or not adapter.leader_only

    async def _start_adapter(self, adapter: Adapter) -> None:
        # One platform that cannot start (a refused token, an unreachable service) costs the others nothing.
        try:
            await adapter.start(self.handler)
        except AdapterUnavailable as exc:
            log.error("%s", exc)

    async def _warn_about_configuration(self) -> None:
        """Say at start what the configuration asks for that cannot happen."""
        for account in self.config.accounts:
            percent = account.warn_below_percent is not None or account.critical_below_percent is not None
            if percent and not PROVIDERS[account.provider].granted:
                log.warning(
                    "%s: %s reports no granted credit, so warn_below_percent and critical_below_percent never "
                    "fire; use warn_below and critical_below",
                    account.name,
                    account.provider,
                )
        for channel in await self.channels():
            needs = self.config.unconfigured.get(channel.platform)
            if needs:
                log.warning(
                    "channel %s (%s) cannot get messages: %s is not set; they are marked failed until it is",
                    channel.key,
                    channel.source,
                    needs,
                )

    async def start(self) -> None:
        """Start the adapters that every replica runs and the scheduler; lead at once or keep trying."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        await self._warn_about_configuration()
        for adapter in self.adapters.values():
            if not adapter.leader_only:
                await self._start_adapter(adapter)
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
            if adapter.leader_only:
                await self._start_adapter(adapter)
        await self.reschedule()

    async def _step_down(self) -> None:
        log.error("lost the lead: scheduled work stops here until the lead is regained")
        self.leading = False
        if self.scheduler is not None:
            for job in self.scheduler.get_jobs():
                if job.id != "leadership":
                    job.remove()
        for adapter in self.adapters.values():
            if adapter.leader_only:
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

    async def stop(self, grace: float | None = None) -> None:
        """Stop scheduling, let running jobs and sends finish for up to `CREDITBOT_STOP_GRACE_SECONDS`, cancel
        what is still running (keeping the readings already fetched), then stop the adapters."""
        grace = self.settings.stop_grace_seconds if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._stopping = True
        if self.scheduler is not None:
            # Pause first: shutting the scheduler down cancels the jobs it is running.
            self.scheduler.pause()
        await asyncio.sleep(0)  # jobs the scheduler just launched register themselves or see _stopping
        if self._housekeeping is not None:
            self._housekeeping.cancel()  # it resumes where its last short transaction ended
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                # A cancelled poll stores the readings it already has before it ends.
                await asyncio.wait(pending, timeout=CANCEL_WAIT)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        # Fetches started for chat answers that gave up waiting still store their readings, within the grace.
        await self.monitor.aclose(max(0.0, deadline - loop.time()))
        for adapter in self.adapters.values():
            if not self._runs(adapter):
                continue
            try:
                await asyncio.wait_for(adapter.stop(), timeout=CANCEL_WAIT)
            except TimeoutError:  # stopping must end: the process exits without it
                log.warning("the %s adapter did not stop within %g s; leaving it", adapter.platform, CANCEL_WAIT)
            except Exception:
                log.exception("stopping the %s adapter failed", adapter.platform)
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


async def _no_chart(_views: Sequence[AccountView]) -> bytes | None:
    return None


def _summary_job(runtime: Runtime, channels: Sequence[Channel]) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def job() -> None:
        await runtime.send_summaries(channels)

    return job
