"""Shared helpers for the benchmarks: a `clinscribe serve` subprocess and RSS sampling.

The server runs in its own process group (so its children die with it), on a free port of
127.0.0.1, with a fresh data directory, a clean environment (no CLINSCRIBE_* or proxy variables
inherited from the caller) and its stderr/stdout saved to a log file whose tail is printed when
something goes wrong.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
MB = 1024 * 1024
TERMINAL = frozenset({"completed", "failed", "cancelled"})  # a consultation's final statuses

# Proxy settings from the caller's shell must not send loopback traffic anywhere else.
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def fake_servers_importable() -> None:
    """Make ``tests.fakes`` importable (the repo root on sys.path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop servers and remove temp dirs."""

    def _handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clinscribe_executable() -> Path:
    """The console script of the interpreter running the bench (the project venv)."""
    candidate = Path(sys.executable).parent / "clinscribe"
    if candidate.exists():
        return candidate
    fallback = REPO / ".venv" / "bin" / "clinscribe"
    if fallback.exists():
        return fallback
    raise SystemExit("clinscribe console script not found; run with /work/main/.venv/bin/python")


def loopback_client(**kwargs: object) -> httpx.Client:
    return httpx.Client(trust_env=False, **kwargs)  # type: ignore[arg-type]


def loopback_async_client(**kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, **kwargs)  # type: ignore[arg-type]


class ServerStartError(RuntimeError):
    pass


@dataclass
class Server:
    """A running `clinscribe serve` (or `clinscribe worker`) subprocess."""

    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    log_path: Path
    _log_file: IO[bytes] | None = field(repr=False, default=None)
    env: dict[str, str] = field(repr=False, default_factory=dict)  # what it was started with

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_lines_matching(self, *needles: str) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if any(n in line for n in needles)]

    def save_log(self, dest: str | Path | None) -> None:
        """Copy the server log to ``dest`` (when given) before the temp dir is removed."""
        if dest:
            with contextlib.suppress(OSError):
                Path(dest).write_bytes(self.log_path.read_bytes())

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``; returns the exit code."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        else:
            # The leader is gone; make sure nothing it started lingers.
            _signal_group(self.process.pid, signal.SIGKILL)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None
        return self.process.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def server_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLINSCRIBE_") and k.lower() not in _PROXY_VARS
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(overrides)
    return env


def start_server(
    work_dir: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    args: tuple[str, ...] = ("serve",),
    startup_timeout_s: float = 60.0,
) -> Server:
    """Start `clinscribe serve` with data in ``work_dir/data`` and wait until it is ready.

    ``work_dir`` is also the working directory, so no stray ``.env`` file is read. ``args``:
    ``("serve", "--no-worker")`` for an API-only process (see :func:`start_worker`).
    """
    port = free_port()
    env = server_env(
        {
            "CLINSCRIBE_DATA_DIR": str(work_dir / "data"),
            "CLINSCRIBE_HOST": "127.0.0.1",
            "CLINSCRIBE_PORT": str(port),
            "CLINSCRIBE_LOG_LEVEL": "INFO",
            **(overrides or {}),
        }
    )
    server = _spawn(work_dir, args, env, f"http://127.0.0.1:{port}", "server.log")
    try:
        wait_ready(server, startup_timeout_s)
    except BaseException:
        server.stop(timeout_s=5)
        raise
    return server


def start_worker(api: Server, *, startup_timeout_s: float = 60.0) -> Server:
    """Start a `clinscribe worker` beside ``api`` (same data and settings) and wait until it
    runs workflows and has loaded the note engine; its base URL serves its own /metrics."""
    port = free_port()
    worker = _spawn(
        api.data_dir.parent,
        ("worker", "--metrics-port", str(port)),
        {**api.env, "CLINSCRIBE_LOG_LEVEL": "INFO"},  # it says when it is ready
        f"http://127.0.0.1:{port}",
        f"worker-{port}.log",
    )
    deadline = time.monotonic() + startup_timeout_s
    ready = ("worker started", "note engine ready")
    while not all(worker.log_lines_matching(line) for line in ready):
        if worker.process.poll() is not None or time.monotonic() > deadline:
            worker.stop(timeout_s=5)
            raise ServerStartError(f"the worker did not start; log tail:\n{worker.log_tail()}")
        time.sleep(0.1)
    return worker


def _spawn(
    work_dir: Path, args: tuple[str, ...], env: dict[str, str], base_url: str, log_name: str
) -> Server:
    log_path = work_dir / log_name
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(clinscribe_executable()), *args],
        cwd=work_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: stop() kills children too
    )
    return Server(process, base_url, work_dir / "data", log_path, log_file, env)


def wait_ready(server: Server, timeout_s: float) -> float:
    """Poll /readyz until it answers 200; returns seconds waited.

    Ready, not only up: the note engine's dictionaries are loaded (seconds of CPU, then one
    full garbage collection) before anything is measured.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    with loopback_client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise ServerStartError(
                    f"server exited with code {server.process.returncode} during startup; "
                    f"log tail:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{server.base_url}/readyz").status_code == 200:
                    return time.monotonic() - started
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"/readyz did not answer 200 within {timeout_s:.0f} s; log tail:\n"
                    f"{server.log_tail()}"
                )
            time.sleep(0.1)


@contextlib.contextmanager
def running_server(
    work_dir: Path, overrides: Mapping[str, str] | None = None, **kwargs: float
) -> Iterator[Server]:
    server = start_server(work_dir, overrides, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def wait_terminal(
    client: httpx.Client, base_url: str, cid: str, timeout_s: float
) -> dict[str, Any]:
    """Poll a consultation every 0.1 s until it ends or ``timeout_s`` passes; its last body."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get(f"{base_url}/api/consultations/{cid}").json()
        if body.get("status") in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def create_api_key(server: Server, clinic: str = "Bench Clinic", name: str = "bench") -> str:
    """A clinician API key made the way an operator makes one: `clinscribe users create-admin`
    (which creates the clinic) then `clinscribe api-keys create`, against the server's data."""

    def cli(*args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [str(clinscribe_executable()), *args],
            cwd=server.data_dir.parent,
            env=server.env,
            input=stdin.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise ServerStartError(f"clinscribe {' '.join(args[:2])} failed:\n{output}")
        return done.stdout.decode()

    password = base64.urlsafe_b64encode(os.urandom(24)).decode()
    cli("users", "create-admin", "--clinic", clinic, "--email", "bench@example.org",
        "--password-stdin", stdin=password + "\n")  # fmt: skip
    return cli("api-keys", "create", "--clinic", clinic, "--name", name).strip().splitlines()[-1]


def rss_bytes(pid: int, *, include_children: bool = True) -> int:
    """Resident set size of ``pid`` (plus all its descendants); 0 if it is gone."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        if include_children:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += child.memory_info().rss
        return int(total)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


@dataclass
class Sample:
    t: float  # time.monotonic()
    rss: int
    extra: int | None = None


class RssSampler:
    """Samples a process tree's RSS every ``interval_s`` in a daemon thread.

    ``probe`` (optional) is called at each sample and its integer result stored alongside
    (e.g. how far the client has read the file it uploads).
    """

    def __init__(
        self,
        pid: int,
        interval_s: float = 0.05,
        *,
        include_children: bool = True,
        probe: object = None,
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.include_children = include_children
        self.probe = probe
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            extra = None
            if callable(self.probe):
                with contextlib.suppress(Exception):
                    extra = int(self.probe())
            rss = rss_bytes(self.pid, include_children=self.include_children)
            self.samples.append(Sample(time.monotonic(), rss, extra))
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> int:
        window = [s.rss for s in self.between(start, end) if s.rss]
        return max(window) if window else 0


def parse_ts(value: str) -> float:
    """An API or SQLite timestamp (UTC, with or without zone) as epoch seconds."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank-interpolated percentile (like numpy's default 'linear')."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mib(value: float) -> float:
    return round(value / MB, 1)


def in_temp_dir(
    prefix: str,
    measure: Callable[[argparse.Namespace, Path], dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run ``measure(args, tmp)`` in a fresh temp dir that is removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
