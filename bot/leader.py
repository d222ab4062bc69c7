"""One leader at a time for scheduled work: a PostgreSQL advisory lock held on a dedicated connection, or,
with SQLite, an exclusive lock on a file beside the database (one `creditbot run` at a time)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x63726564_6C656164  # "credlead": the advisory lock id of the scheduler leader


class AnotherRunError(Exception):
    """Another `creditbot run` already uses this SQLite database."""


class Leadership(Protocol):
    """Who runs the scheduler."""

    async def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this process leads."""
        ...

    async def check(self) -> bool:
        """True while the lead is still held (a lost connection loses it)."""
        ...

    async def release(self) -> None:
        """Give the lead up."""
        ...


class PostgresLeadership:
    """`pg_try_advisory_lock` on a dedicated session: it is held until released or the session ends."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self._connection: Any = None
        self.leading = False

    async def try_acquire(self) -> bool:
        """Take the lock if it is free."""
        import asyncpg

        if self.leading:
            return True
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(self.dsn, timeout=5)
            self.leading = bool(
                await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY)
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot reach PostgreSQL for leader election: %s", type(exc).__name__)
            await self._drop()
        return self.leading

    async def check(self) -> bool:
        """Probe the session that holds the lock."""
        import asyncpg

        if not self.leading or self._connection is None:
            return False
        try:
            await self._connection.fetchval("SELECT 1", timeout=5)
        # A session that asyncpg already saw closing raises InterfaceError ("connection is closed"): the lock
        # went with it, so this process must stop leading rather than believe it still holds the lock.
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.error("lost the database session that held the leader lock")
            await self._drop()
        return self.leading

    async def release(self) -> None:
        """Close the session, which releases the lock."""
        await self._drop()

    async def _drop(self) -> None:
        self.leading = False
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the session may already be gone
                await self._connection.close()
        self._connection = None


class FileLeadership:
    """An exclusive `flock` on `<database>.lock`; the kernel releases it when the process dies."""

    def __init__(self, database_url: str) -> None:
        database = make_url(database_url).database or "creditbot.db"
        self.path = Path(f"{database}.lock")
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        """Take the file lock, or raise AnotherRunError naming the holder."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AnotherRunError(
                f"another creditbot run (pid {holder}) is using this SQLite database; run one at a time, "
                "or use PostgreSQL (CREDITBOT_DATABASE_URL=postgresql+asyncpg://...) for several replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    async def check(self) -> bool:
        """A held file lock cannot be lost."""
        return self._fd is not None

    async def release(self) -> None:
        """Unlock and close the file."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leadership_for(database_url: str) -> Leadership:
    """The leader election that fits the database."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return PostgresLeadership(database_url)
    return FileLeadership(database_url)
