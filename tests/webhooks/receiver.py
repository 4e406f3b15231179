"""A real webhook receiver on 127.0.0.1 for tests: a threaded ``http.server``.

It checks every request with the verification function *as printed in docs/webhooks.md*
(read from the page and executed, so the documented recipe is the one tested), and processes
each delivery once, keyed by its X-Clinscribe-Delivery header, like a careful integrator would.
Tests steer it: answers to give (``script``), a request to hold open (``hold_next``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
VerifyFn = Callable[[str, str, str, bytes], bool]


def documented_verify() -> VerifyFn:
    """``verify_signature`` from the Python block of docs/webhooks.md."""
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    source = next(b for b in blocks if "def verify_signature(" in b)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOC), "exec"), namespace)  # our own docs page
    verify: VerifyFn = namespace["verify_signature"]
    return verify


@dataclass
class Received:
    path: str
    delivery_id: str
    event_type: str
    attempt: int
    signature_ok: bool
    body: dict[str, Any]
    received_at: float
    answered: int | None = None


class Receiver:
    def __init__(self) -> None:
        self.verify = documented_verify()
        self.secrets: dict[str, str] = {}  # path -> the subscription's secret
        self.script: dict[str, deque[int]] = {}  # path -> statuses to answer next, then 200
        self.hold_s = 0.0  # hold the next request open this long (bounded) before answering
        self.received: list[Received] = []
        self.processed: dict[str, Received] = {}  # delivery id -> the request acted upon
        self.duplicates: Counter[str] = Counter()  # delivery id -> repeats answered 2xx
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, *statuses: int) -> None:
        with self._lock:
            self.script[path] = deque(statuses)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver: {what} not seen within {timeout_s}s: {self.received}")

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, float]:
        secret = self.secrets.get(path, "")
        ok = self.verify(
            secret,
            headers.get("x-clinscribe-timestamp", ""),
            headers.get("x-clinscribe-signature", ""),
            body,
        )
        request = Received(
            path=path,
            delivery_id=headers.get("x-clinscribe-delivery", ""),
            event_type=headers.get("x-clinscribe-event", ""),
            attempt=int(headers.get("x-clinscribe-attempt", "0")),
            signature_ok=ok,
            body=json.loads(body) if ok else {},
            received_at=time.monotonic(),
        )
        with self._lock:
            self.received.append(request)
            hold, self.hold_s = self.hold_s, 0.0
            scripted = self.script.get(path)
            status = scripted.popleft() if scripted else 200
            if not ok:
                status = 401
            elif 200 <= status < 300:
                if request.delivery_id in self.processed:
                    self.duplicates[request.delivery_id] += 1  # already acted on: just ack
                else:
                    self.processed[request.delivery_id] = request
            request.answered = status
        return status, hold

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, hold = receiver._handle(self.path, headers, body)
                if hold:
                    receiver.release.wait(hold)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed while we held the request)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
