"""The part every fake provider shares: serve an ASGI app on 127.0.0.1 from a thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn


class LoopbackServer:
    """Runs ``self.app`` with uvicorn in a daemon thread on a free loopback port.

    Subclasses build ``self.app`` in their ``__init__`` and name themselves in ``label``.
    """

    label = "fake server"
    app: Any
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _port: int | None = None

    def start(self, timeout_s: float = 10.0) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", loop="asyncio")
        config.timeout_graceful_shutdown = 2  # in-flight slow requests must not block stop()
        self._server = server = uvicorn.Server(config)
        self._thread = thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{self.label} is not started")
        return f"http://127.0.0.1:{self._port}"
