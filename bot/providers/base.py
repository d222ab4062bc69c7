"""What every provider client shares: the HTTP helper with retries, requests, and the `Provider` base class (the
errors are in `bot.providers.errors`)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, overload
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from bot.breakdown import BreakdownReport, Dimension
from bot.models import JsonSource, ProviderReport
from bot.money import AmountError, normalise_currency, parse_amount

# The error classes live in their own module; providers and the monitor import them from here as before.
from bot.providers.errors import AuthError as AuthError
from bot.providers.errors import BadResponseError as BadResponseError
from bot.providers.errors import ProviderError as ProviderError
from bot.providers.errors import RateLimitedError as RateLimitedError
from bot.providers.errors import UnavailableError as UnavailableError
from bot.providers.errors import transport_error
from bot.retry_after import parse_retry_after
from bot.text import one_line

log = logging.getLogger(__name__)
T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ATTEMPTS = 3
MAX_PAGES = 400  # a guard against a cursor that never ends: 34 years of Anthropic's 31-day pages
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524, 529})


class HostLimiter:
    """Caps concurrent requests per provider host (scheme://host:port)."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def semaphore(self, url: str) -> asyncio.Semaphore:
        """The semaphore guarding the host of `url`."""
        key = host_key(url)
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(self._per_host)
        return self._semaphores[key]

    async def run(self, url: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request while holding its host's slot."""
        key = host_key(url)
        async with self.semaphore(url):
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.in_flight[key])
            try:
                return await call()
            finally:
                self.in_flight[key] -= 1


def host_key(url: str) -> str:
    """`scheme://host:port` of a URL, the unit of per-host limits."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def join_url(base_url: str, path: str) -> str:
    """Append a provider path to a base URL that may carry a prefix."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


@dataclass
class ProviderHttp:
    """GETs JSON with bounded retries (429 honouring Retry-After, 5xx, network errors) within a deadline."""

    client: httpx.AsyncClient
    limiter: HostLimiter
    provider: str
    deadline: float  # event-loop time by which the whole fetch must end
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    max_attempts: int = MAX_ATTEMPTS
    max_body_bytes: int = MAX_BODY_BYTES
    # Removed from any provider text before it is cut or shown; kept out of the repr, which would print them.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def _remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    async def get_json(
        self, url: str, *, headers: Mapping[str, str], params: Mapping[str, Any] | None = None
    ) -> Any:
        """GET a URL and return its decoded JSON body, or raise a ProviderError."""
        last_error: ProviderError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                status, content_type, body, retry_after = await self._send(url, headers, params)
            except httpx.TransportError as exc:
                last_error = transport_error(exc, self.provider, url)
                retry_after = None
            else:
                if status < 300:
                    payload = _decode_json(body, content_type, status, self.provider)
                    _raise_for_error_body(payload, self.provider, status, self.secrets)
                    return payload
                last_error = _status_error(status, content_type, body, self.provider, self.secrets)
                if not isinstance(last_error, RateLimitedError | UnavailableError):
                    raise last_error
            if attempt == self.max_attempts:
                break
            wait = retry_after if retry_after is not None else _backoff(attempt)
            if wait > self._remaining() - 0.05:
                if isinstance(last_error, RateLimitedError) and retry_after is not None:
                    raise RateLimitedError(
                        f"{self.provider} is rate limiting us and asks to retry after {retry_after:.0f} s",
                        status=429,
                    )
                break
            log.debug("retrying %s in %.2fs after: %s", self.provider, wait, last_error)
            await self.sleep(wait)
        assert last_error is not None
        raise last_error

    async def _send(
        self, url: str, headers: Mapping[str, str], params: Mapping[str, Any] | None
    ) -> tuple[int, str, bytes, float | None]:
        async def call() -> tuple[int, str, bytes, float | None]:
            request = self.client.build_request("GET", url, headers=dict(headers), params=params)
            response = await self.client.send(request, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise BadResponseError(
                            f"{self.provider} sent a response larger than "
                            f"{self.max_body_bytes // (1024 * 1024)} MB",
                            status=response.status_code,
                        )
                    chunks.append(chunk)
            finally:
                await response.aclose()
            return (
                response.status_code,
                response.headers.get("content-type", ""),
                b"".join(chunks),
                parse_retry_after(response.headers.get("retry-after")),
            )

        return await self.limiter.run(url, call)


def _backoff(attempt: int) -> float:
    # Jitter keeps several replicas or accounts from retrying in lockstep.
    return float(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311


def _looks_like_html(content_type: str, body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html"))


def _decode_json(body: bytes, content_type: str, status: int, provider: str) -> Any:
    if _looks_like_html(content_type, body):
        raise BadResponseError(f"{provider} answered with an HTML page instead of JSON", status=status)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponseError(f"{provider} answered with malformed JSON", status=status) from None


def error_message(payload: Any, secrets: tuple[str, ...] = ()) -> str | None:
    """The human message inside a provider error body, in any of the common envelopes."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        for key in ("message", "msg", "type", "code"):
            if isinstance(error.get(key), str) and error[key]:
                return one_line(error[key], secrets=secrets)
    if isinstance(error, str) and error:
        return one_line(error, secrets=secrets)
    for key in ("message", "msg", "detail"):
        if isinstance(payload.get(key), str) and payload[key]:
            return one_line(payload[key], secrets=secrets)
    return None


def _raise_for_error_body(payload: Any, provider: str, status: int, secrets: tuple[str, ...]) -> None:
    if isinstance(payload, dict) and payload.get("error") not in (None, False, "", {}):
        message = error_message(payload, secrets) or "an unspecified error"
        raise BadResponseError(f"{provider} reported an error: {message}", status=status)


def _status_error(
    status: int, content_type: str, body: bytes, provider: str, secrets: tuple[str, ...]
) -> ProviderError:
    detail: str | None = None
    if _looks_like_html(content_type, body):
        detail = "an HTML error page"
    else:
        try:
            detail = error_message(json.loads(body), secrets)
        except (ValueError, UnicodeDecodeError):
            text = body[:2000].decode("utf-8", "replace").strip()
            detail = one_line(text, limit=200, secrets=secrets) if text else None
    suffix = f": {detail}" if detail else ""
    if status in (401, 403) and detail == "an HTML error page":
        # The APIs refuse keys in JSON; an HTML 401/403 comes from something in between (a firewall, a
        # proxy, a captive portal). It counts as a failing source, not as a refused key alerting at once.
        return BadResponseError(
            f"{provider} answered HTTP {status} with an HTML page, not its API: a proxy or firewall in between?",
            status=status,
        )
    if status in (401, 403):
        return AuthError(f"{provider} refused the key (HTTP {status}){suffix}", status=status)
    if status == 429:
        return RateLimitedError(f"{provider} is rate limiting us (HTTP 429){suffix}", status=status)
    if status in _RETRYABLE_STATUS or status >= 500:
        return UnavailableError(f"{provider} is failing (HTTP {status}){suffix}", status=status)
    return BadResponseError(f"{provider} answered HTTP {status}{suffix}", status=status)


@dataclass(frozen=True)
class FetchRequest:
    """Everything a provider needs for one fetch of one account."""

    http: ProviderHttp
    base_url: str
    api_key: SecretStr
    currency: str | None  # the account's preferred currency, when configured
    since: date  # first UTC day whose spend the caller needs
    now: datetime  # aware UTC
    shown_currency: str | None = None  # the currency the account was last shown in: kept while it is listed
    # Where the user set the key, for hints about a refused one (`Account.key_source`).
    key_source: str = "the account's api_key"
    team_id: str | None = None  # xAI: the team to read, when configured rather than found from the key
    json_source: JsonSource | None = None  # http-json: what to read from where

    def bearer(self) -> dict[str, str]:
        """The Authorization header most providers use."""
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}", "Accept": "application/json"}

    def url(self, path: str) -> str:
        """Absolute URL of a provider path under this account's base URL."""
        return join_url(self.base_url, path)


async def cursor_pages(
    request: FetchRequest, path: str, headers: Mapping[str, str], params: Mapping[str, Any], provider: str
) -> AsyncIterator[Any]:
    """Bodies of a `has_more`/`next_page` paginated endpoint; a missing or repeated cursor is an error,
    never a silently shorter total."""
    query = dict(params)
    seen: set[str] = set()
    for _page in range(MAX_PAGES):
        body = await request.http.get_json(request.url(path), headers=headers, params=query)
        yield body
        if not require(body, "has_more", provider):
            return
        cursor = body.get("next_page")
        if not isinstance(cursor, str) or not cursor or cursor in seen:
            raise BadResponseError(f"{provider} said more pages follow but gave no usable next_page cursor")
        seen.add(cursor)
        query["page"] = cursor
    raise BadResponseError(f"{provider} needed more than {MAX_PAGES} pages")


@overload
async def settle(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A | ProviderError, B | ProviderError]: ...
@overload
async def settle(
    a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /
) -> tuple[A | ProviderError, B | ProviderError, C | ProviderError]: ...
async def settle(*calls: Awaitable[Any]) -> tuple[Any, ...]:
    """Run requests at once and wait for all: each result is its value or the ProviderError it raised, so
    the caller decides which parts it can do without; any other exception (a bug) propagates."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ProviderError):
            raise result
    return tuple(results)


class Provider:
    """One provider's billing client. A client names itself in its class line, e.g.
    `class DeepSeekProvider(Provider, name="deepseek", base_url="https://api.deepseek.com")`, and is listed in
    the registry (`bot.providers.PROVIDERS`)."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    spend_only: ClassVar[bool]  # no balance endpoint: the balance is estimated from the ledger
    experimental: ClassVar[bool]
    internal: ClassVar[bool]  # not offered to users (the demo's simulated provider)
    granted: ClassVar[bool]  # may report the credit granted, which the *_below_percent thresholds are shares of
    # For `creditbot providers`: what it reports ("balance", "key limit", "spend only", "quota"), the key it
    # needs (and where to make it), and the variable that configures it with no file.
    reports: ClassVar[str]
    key: ClassVar[str]
    env: ClassVar[str | None]
    # Where the money goes: the dimensions `fetch_breakdown` gives (none: "no breakdown from this provider"),
    # and how many completed days back the source can answer (None: as far as the retention asks).
    breakdowns: ClassVar[frozenset[Dimension]]
    breakdown_reach_days: ClassVar[int | None]

    def __init_subclass__(
        cls,
        *,
        name: str,
        base_url: str,
        spend_only: bool = False,
        experimental: bool = False,
        internal: bool = False,
        granted: bool = False,
        reports: str = "balance",
        key: str = "API key",
        env: str | None = None,
        breakdowns: tuple[Dimension, ...] = (),
        breakdown_reach_days: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.default_base_url = name, base_url
        cls.spend_only, cls.experimental, cls.internal, cls.granted = spend_only, experimental, internal, granted
        cls.reports, cls.key, cls.env = ("spend only" if spend_only else reports), key, env
        cls.breakdowns, cls.breakdown_reach_days = frozenset(breakdowns), breakdown_reach_days

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Fetch one account's figures or raise a ProviderError."""
        raise NotImplementedError

    async def fetch_breakdown(self, request: FetchRequest, until: date) -> BreakdownReport:
        """Every dimension in `breakdowns` for the UTC days `request.since` to `until` (today included when
        `until` is today and the provider reports it), or raise a ProviderError."""
        raise NotImplementedError(f"{self.name} gives no breakdown")


def require(mapping: Any, key: str, provider: str, where: str = "response") -> Any:
    """`mapping[key]`, or a clear BadResponseError when the body lacks it."""
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
        raise BadResponseError(f"{provider} {where} is missing '{key}'")
    return mapping[key]


def amount(value: Any, what: str, provider: str) -> Decimal:
    """A money amount from a provider body, or a clear BadResponseError."""
    try:
        return parse_amount(value, what=what)
    except AmountError as exc:
        raise BadResponseError(f"{provider}: {exc}") from None


def currency_code(value: Any, what: str, provider: str) -> str:
    """An upper-case currency code from a provider body, or a clear BadResponseError."""
    try:
        return normalise_currency(value, what=what)
    except AmountError as exc:
        raise BadResponseError(f"{provider}: {exc}") from None


def expect_list(value: Any, what: str, provider: str) -> list[Any]:
    """`value` when it is a JSON array, or a clear BadResponseError."""
    if not isinstance(value, list):
        raise BadResponseError(f"{provider} {what} is not a list")
    return value
