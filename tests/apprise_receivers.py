"""Loopback receivers for the `apprise` tests: an HTTP server that records what Apprise's `json://` and
`form://` services post (answering with scripted statuses), and an SMTP server (aiosmtpd) for `mailto://`."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from tests.test_run_e2e import free_port


@dataclass
class Post:
    """One request as received: its path, status answered, headers and body (parsed as JSON or a form)."""

    path: str
    status: int
    content_type: str
    body: bytes
    fields: dict[str, str] = field(default_factory=dict)  # form fields
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # (filename, mimetype, content)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _multipart(content_type: str, body: bytes) -> EmailMessage:
    parsed = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


class HttpReceiver:
    """`json://127.0.0.1:PORT/path` and `form://...` land here; `statuses` are answered in turn, then 200."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.statuses: list[int] = []
        self.always: int | None = None  # answer this to every request
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay)
                status = receiver.always or (receiver.statuses.pop(0) if receiver.statuses else 200)
                post = Post(self.path, status, self.headers.get("Content-Type", ""), body)
                if post.content_type.startswith("multipart/form-data"):
                    for part in _multipart(post.content_type, body).iter_parts():
                        name, filename = part.get_param("name", header="content-disposition"), part.get_filename()
                        payload = part.get_payload(decode=True) or b""
                        assert isinstance(payload, bytes)
                        if filename:
                            post.files.append((filename, part.get_content_type(), payload))
                        else:
                            post.fields[str(name)] = payload.decode()
                elif post.content_type.startswith("application/x-www-form-urlencoded"):
                    post.fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                receiver.posts.append(post)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(mail, EmailMessage)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), mail))
        return "250 OK"


class SmtpReceiver:
    """A local SMTP server without TLS or authentication: `mailto://127.0.0.1:PORT?from=...&to=...`."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def mails(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.inbox.mails

    def url(self, sender: str, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}"

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.controller.stop()
