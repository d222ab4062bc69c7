"""A delivery adapter for a new platform, `memo`, written as a plugin author would: each message becomes a
JSON line in `<MEMO_DIR>/<channel>.jsonl`. Run as `python -m tests.memo_adapter <creditbot command>`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot import app
from bot.adapter import BaseAdapter
from bot.cli import main
from bot.messages import Message
from bot.text import safe_file_name


class MemoAdapter(BaseAdapter):
    """The `memo` platform: appends every message to a file named after its channel."""

    platform = "memo"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Append the message as one JSON line."""
        line = {"key": key, "title": message.title, "text": message.text, "chart": message.chart is not None}
        with (self.folder / f"{safe_file_name(channel_id, 'memo')}.jsonl").open("a") as inbox:
            inbox.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    app.register_adapter("memo", lambda config, listening: MemoAdapter(Path(os.environ["MEMO_DIR"])))
    main()
