"""A loopback HTTP server that answers from a script and records every request (for the client's unit tests)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A scripted answer that closes the connection with a TCP reset instead of answering.
RESET = "reset"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def job(
    status: str = "QUEUED", job_id: str = "4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", **extra: Any
) -> dict[str, Any]:
    return {
        "id": job_id,
        "type": "jobs",
        "status": status,
        "createdAt": "2026-12-01T10:00:00.000Z",
        "updatedAt": "2026-12-01T10:00:01.000Z",
        "attempts": 0,
        "progress": None,
        "links": {"self": f"http://127.0.0.1/prod/jobs/{job_id}"},
        **extra,
    }


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[Answer | str] = deque()
        self.requests: list[Recorded] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/prod"

    def answer(self, *answers: Answer | str) -> None:
        self.script.extend(answers)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        scripted = (
            self.server.script.popleft() if self.server.script else Answer(500, {"title": "unscripted"})
        )
        if scripted == RESET:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        assert isinstance(scripted, Answer)
        data = json.dumps(scripted.body).encode()
        self.send_response(scripted.status)
        self.send_header("Content-Type", scripted.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in scripted.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass
