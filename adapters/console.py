"""Console adapter: prints messages to a terminal and, on a TTY, answers `/credits ...` typed at it."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.adapter import BaseAdapter, DeliveryError
from bot.handler import Requester
from bot.messages import Message
from bot.plain import render_text
from bot.text import safe_file_name

if TYPE_CHECKING:
    from bot.handler import CommandHandler

log = logging.getLogger(__name__)


class ConsoleAdapter(BaseAdapter):
    """The `console` platform: channel ids are labels such as `stdout`; charts are saved as PNG files."""

    platform = "console"

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        chart_dir: Path = Path("data/charts"),
        interactive: bool | None = None,
        stdin: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.out = out or sys.stdout
        self.chart_dir = chart_dir
        self.stdin = stdin or sys.stdin
        self.interactive = self.stdin.isatty() if interactive is None else interactive
        self.user = getpass.getuser()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, handler: CommandHandler) -> None:
        """Begin answering typed commands when attached to a terminal."""
        self.handler = handler
        if self.interactive:
            self._reader = asyncio.create_task(self._read_commands())
            self._write("Type /credits help for commands.")

    async def stop(self) -> None:
        """Stop reading commands."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Print a message; a chart is written next to the data and its path printed."""
        text = render_text(message)
        if message.chart:
            try:
                self.chart_dir.mkdir(parents=True, exist_ok=True)
                # A bare file name, so a chart can only ever land inside the chart directory.
                path = self.chart_dir / safe_file_name(message.chart_name)
                path.write_bytes(message.chart)
            except OSError as exc:
                raise DeliveryError(f"cannot save the chart: {exc.strerror}") from None
            text += f"\nchart: {path}"
        self._write(f"── #{channel_id} ──\n{text}\n")

    async def answer(self, line: str) -> str:
        """Run one typed command through the core and return the printed reply."""
        assert self.handler is not None
        requester = Requester("console", self.user, "stdout", is_admin=True, name=self.user)
        reply = await self.handler.handle(line, requester)
        if reply.message.chart:
            await self.send("stdout", reply.message)
            return ""
        return render_text(reply.message)

    async def _read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.stdin)
        while line_bytes := await reader.readline():
            line = line_bytes.decode(errors="replace").strip()
            if not line:
                continue
            if not line.lstrip("/").lower().startswith("credits"):
                self._write("Commands start with /credits (try /credits help).")
                continue
            try:
                self._write(await self.answer(line))
            except Exception:  # one bad command must not end the console
                log.exception("console command failed")

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text + "\n")
            self.out.flush()
