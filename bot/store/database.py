"""Opening the database: the engine, SQLite's pragmas, schema upgrades under a lock, and the one-line problem
text for every database failure (which URL, never its password, and what to do)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK_KEY = 0x63726564_6D696772  # "credmigr": a fixed advisory lock id for schema upgrades
CONNECT_TIMEOUT = 10.0  # seconds to reach a PostgreSQL server


class StoreError(Exception):
    """The database cannot be opened or used; the message says what to fix."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured  # the URL itself is wrong, not the server


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Only takes effect on a new, empty database: free pages can then go back to the file system a few at a
    # time (see `bot.store.history`); an older database is converted once by the housekeeping.
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    # WAL lets `creditbot check` read while `creditbot run` writes; busy_timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _prepare_sqlite_path(url: sa.URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class Database:
    """An open database: the engine, its health, schema upgrades and closing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.damaged: str | None = None  # set once SQLite reported a damaged file: what to tell the operator

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Self:
        """Connect, switch SQLite to WAL mode and upgrade the schema to the latest revision."""
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                "CREDITBOT_DATABASE_URL is not a database URL (e.g. sqlite+aiosqlite:///./data/creditbot.db)",
                misconfigured=True,
            ) from None
        try:
            if parsed.get_backend_name() == "sqlite":
                _prepare_sqlite_path(parsed)
        except OSError as exc:
            raise StoreError(
                f"cannot create the database directory for {parsed.database}: {exc.strerror}"
            ) from None
        # asyncpg waits 60 s for a server that accepts the connection but never answers; fail sooner.
        connect_args = {"timeout": CONNECT_TIMEOUT} if parsed.get_driver_name() == "asyncpg" else {}
        try:
            engine = create_async_engine(
                parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite", connect_args=connect_args
            )
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(
                f"CREDITBOT_DATABASE_URL cannot be used: {_short(exc)} (use an async driver such as "
                "sqlite+aiosqlite:// or postgresql+asyncpg://)",
                misconfigured=True,
            ) from None
        database = cls(engine)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "handle_error", database._note_damage)
        if migrate:
            try:
                await database.migrate()
            except Exception as exc:  # driver errors (asyncpg's own, OSError, TimeoutError) are not all wrapped
                await engine.dispose()
                raise StoreError(database_problem(parsed, exc, opening=True)) from None
        return database

    async def migrate(self) -> None:
        """Upgrade the schema with Alembic (imported here: only needed at start)."""
        # An up-to-date schema needs no lock: a read-only database still opens, and starts stay quick.
        async with self.engine.connect() as connection:
            if await connection.run_sync(_at_head):
                return
        # Alembic keeps its migration context in module globals: one upgrade at a time per process.
        async with _migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together take turns: the lock is held until this transaction ends.
                lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
                await connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
            elif connection.dialect.name == "sqlite":
                # Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so the DDL of an
                # upgrade would be committed statement by statement, and a crash half-way would leave tables
                # that the next start fails to create again. An explicit transaction makes the upgrade all or
                # nothing; IMMEDIATE takes the write lock first, so processes starting together take turns.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()

    def _note_damage(self, context: Any) -> None:
        # A damaged page fails only the queries that read it; remember it so that readiness reports it.
        if _is_damage(context.original_exception):
            self.damaged = database_problem(self.engine.url, context.original_exception)

    async def ping(self) -> None:
        """Fail when the database cannot be reached, or when SQLite has reported the file damaged."""
        if self.damaged:
            raise StoreError(self.damaged)
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))


_MIGRATION_LOCKS: dict[int, asyncio.Lock] = {}


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    return _MIGRATION_LOCKS.setdefault(id(loop), asyncio.Lock())


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _at_head(connection: sa.Connection) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return bool(MigrationContext.configure(connection).get_current_revision() == head)


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _short(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return (lines[0] if lines else type(inner).__name__)[:200]


def _is_damage(exc: BaseException) -> bool:
    detail = _short(exc)  # SQLITE_NOTADB and SQLITE_CORRUPT
    return "file is not a database" in detail or "database disk image is malformed" in detail


def is_database_error(exc: BaseException) -> bool:
    """True for an error raised by the database layer (SQLAlchemy, or a driver's own exception)."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, SQLAlchemyError) or module in ("asyncpg", "sqlite3", "aiosqlite")


def database_problem(url: str | sa.URL, exc: BaseException, *, opening: bool = False) -> str:
    """One line that says which database failed, why, and what to do about it (never the password)."""
    parsed = make_url(url)
    shown = f"CREDITBOT_DATABASE_URL={parsed.render_as_string(hide_password=True)}"
    detail = _short(exc)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser().resolve()
        if _is_damage(exc):
            return (
                f"the database file {path} is not a SQLite database or is damaged ({detail}); restore it from "
                f"a backup, or move it away to start with an empty database ({shown})"
            )
        if "locked" in detail:
            hint = "another process holds a write lock on it; try again when it is done"
        else:
            hint = f"check that {path} and its directory can be read and written"
    else:
        hint = "check that the server is running and reachable, and the URL's host, port, database and user"
    return f"{'cannot open' if opening else 'error from'} the database at {shown}: {detail}; {hint}"
