"""Load test: status reads and live-event subscribers while consultations process.

Starts `clinscribe serve` (SQLite, or PostgreSQL with `--postgres`; with `--split`, an
API-only `serve --no-worker` that takes the load and one `clinscribe worker` that runs the
workflows, in place of one process doing both) with a fake OpenAI-compatible
speech-to-text provider that takes ``--stt-latency`` seconds per request (default: the
measurement plus 8 s), so every consultation is still transcribing during the whole
measurement. It makes a clinician API key with the CLI, uploads ``--consultations``
recordings, then drives the load from two more processes on 127.0.0.1:

* ``sse``: ``--subscribers`` concurrent `GET /api/consultations/{id}/events` streams spread
  evenly over the consultations, opened at once and held until each stream ends (terminal
  status) or a deadline. Time to the first event, every status event received and errors
  (non-200, disconnects, timeouts, a stream closed before a terminal status).
* ``gets``: `GET /api/consultations/{id}` open loop at ``--rps`` for ``--duration`` seconds,
  round-robin over the consultations, started once every subscriber has its first event.
  Request i is due at t0 + i/rps whether or not earlier ones have answered; latency counts
  from that due time (no coordinated omission), service time from when it was actually sent.

After processing ends, each subscriber's events are checked against the server's
consultation_events table: everything after its first event, in order, up to the terminal
status. The server's rate limits (per key and per IP) are raised for the run; it says so.

    .venv/bin/python bench/load_test.py [--duration 30] [--rps 200] [--subscribers 200]
        [--consultations 10] [--split] [--postgres] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _server as srv
import httpx
import psutil

RATE_LIMIT = 1_000_000  # per minute, per key and per IP: far above what the bench sends
TARGET_P99_MS = 50.0


def stats_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(srv.percentile(values, 50) * 1000, 1),
        "p90": round(srv.percentile(values, 90) * 1000, 1),
        "p99": round(srv.percentile(values, 99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
    }


def emit(kind: str, **data: Any) -> None:
    """One JSON line to the orchestrator (load processes only)."""
    sys.stdout.write(json.dumps({"kind": kind, **data}) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- load: GETs


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, a request at a time.

    Raw asyncio rather than httpx for the open-loop GETs: httpx's pool costs more CPU per
    request than the server does once requests queue in it, so the generator itself would fall
    behind and the numbers would measure the client.
    """

    def __init__(self, host: str, port: int, headers: str) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.headers}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if "content-length" not in fields:
            raise ValueError("no content-length")  # the API answers JSON with a length
        body = await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_gets(cfg: dict[str, Any]) -> dict[str, Any]:
    ids: list[str] = cfg["ids"]
    rps: float = cfg["rps"]
    total = int(cfg["duration"] * rps)
    url = httpx.URL(cfg["base_url"])
    host, port = str(url.host), int(url.port or 80)
    headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {cfg['key']}\r\n"
    latency: list[float] = []
    service: list[float] = []
    lag: list[float] = []  # due time -> taken by a connection: queueing on the client side
    over_target: list[float] = []  # due time (s into the window) of each answer over target
    errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    due_queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    t0 = 0.0  # the window's start: set before the first request is due

    async def connection_worker() -> None:
        conn = HttpConnection(host, port, headers)
        try:
            while (item := await due_queue.get()) is not None:
                i, due = item
                sent = time.perf_counter()
                lag.append(sent - due)
                try:
                    async with asyncio.timeout(cfg["request_timeout"]):
                        status, body = await conn.get(f"/api/consultations/{ids[i % len(ids)]}")
                    if status == 200:
                        statuses[str(json.loads(body).get("status"))] += 1
                    else:
                        errors[f"HTTP {status}"] += 1
                except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                done = time.perf_counter()
                latency.append(done - due)
                if done - due > TARGET_P99_MS / 1000:
                    over_target.append(due - t0)
                service.append(done - sent)
        finally:
            conn.close()

    # Enough connections that a slow answer never holds up the next due request (open loop):
    # requests wait in the queue only when every connection is busy, and that wait counts.
    workers = [asyncio.create_task(connection_worker()) for _ in range(cfg["max_connections"])]
    # Warm the connections and the server's code paths (not measured).
    warm = HttpConnection(host, port, headers)
    for cid in ids:
        with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
            await warm.get(f"/api/consultations/{cid}")
    warm.close()

    emit("started")
    t0 = time.perf_counter() + 0.05
    stop_sending = t0 + cfg["duration"] + cfg["request_timeout"]
    sent_count = 0
    for i in range(total):
        due = t0 + i / rps
        if time.perf_counter() > stop_sending:  # far behind: bounded in time, not only count
            errors["not sent (generator behind)"] += total - i
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_queue.put_nowait((i, due))
        sent_count += 1
    scheduled_all = time.perf_counter()
    for _ in workers:
        due_queue.put_nowait(None)
    # Each request has its own timeout; this bound only catches a stuck queue.
    _, pending = await asyncio.wait(workers, timeout=cfg["request_timeout"] + 30)
    for task in pending:
        task.cancel()
    errors["unanswered"] += sent_count - len(latency)
    if not errors["unanswered"]:
        del errors["unanswered"]
    ended = time.perf_counter()
    return {
        "requests": total,
        "answered": len(latency),
        "window_s": round(ended - t0, 2),
        "achieved_rps": round(sent_count / max(scheduled_all - t0, 1e-9), 1),
        "latency_ms": stats_ms(latency),
        "service_ms": stats_ms(service),
        "send_lag_ms": stats_ms(lag),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "statuses_seen": dict(statuses),
        # A noisy neighbour shows as slow seconds throughout, a pause as a few bunched ones.
        "over_target": len(over_target),
        "seconds_with_over_target": len({int(t) for t in over_target}),
    }


# ----------------------------------------------------------------------------- load: SSE


async def subscribe(
    client: httpx.AsyncClient, cid: str, first_events: asyncio.Queue[None], deadline: float
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": cid,
        "events": [],  # [status, stage, updated_at, arrived (epoch)]
        "first_event_s": None,
        "terminal": False,
        "error": None,
        "keepalives": 0,
    }
    started = time.perf_counter()
    try:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            async with client.stream("GET", f"/api/consultations/{cid}/events") as response:
                if response.status_code != 200:
                    record["error"] = f"HTTP {response.status_code}"
                    await response.aread()
                    return record
                event: str | None = None
                async for line in response.aiter_lines():
                    if line.startswith(": keep-alive"):
                        record["keepalives"] += 1
                    elif line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event is not None:
                        arrived = time.time()
                        if record["first_event_s"] is None:
                            record["first_event_s"] = time.perf_counter() - started
                            first_events.put_nowait(None)
                        if event == "status":
                            body = json.loads(line[5:])
                            record["events"].append(
                                [body["status"], body["stage"], body["updated_at"], arrived]
                            )
                            if body["status"] in srv.TERMINAL:
                                record["terminal"] = True
                        else:
                            record["events"].append([event, None, None, arrived])
                        event = None
        if not record["terminal"]:
            record["error"] = "closed before a terminal status"
    except TimeoutError:
        record["still_open_at_deadline"] = True  # not an error: the bench stopped listening
    except httpx.HTTPError as exc:
        record["error"] = type(exc).__name__
    except (ValueError, KeyError) as exc:
        record["error"] = f"bad event: {type(exc).__name__}"
    finally:
        if record["first_event_s"] is None:
            first_events.put_nowait(None)  # settled without an event: do not wait for it
    return record


async def run_sse(cfg: dict[str, Any]) -> dict[str, Any]:
    ids: list[str] = cfg["ids"]
    count: int = cfg["subscribers"]
    headers = {"Authorization": f"Bearer {cfg['key']}"}
    # Reads may wait up to a keep-alive interval (15 s) between frames.
    timeout = httpx.Timeout(10.0, read=60.0)
    limits = httpx.Limits(max_connections=count + 8, max_keepalive_connections=count + 8)
    deadline = time.monotonic() + cfg["hold_s"]
    first_events: asyncio.Queue[None] = asyncio.Queue()
    async with srv.loopback_async_client(
        base_url=cfg["base_url"], headers=headers, timeout=timeout, limits=limits
    ) as client:
        tasks = [
            asyncio.create_task(subscribe(client, ids[i % len(ids)], first_events, deadline))
            for i in range(count)
        ]
        # Tell the orchestrator when every subscriber has its first event (or gave up).
        ready_by = time.monotonic() + cfg["connect_timeout"]
        settled = 0
        while settled < count and time.monotonic() < ready_by:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_events.get(), timeout=0.5)
                settled += 1
        emit("ready", settled=settled)
        done: set[asyncio.Task[dict[str, Any]]] = set()
        pending: set[asyncio.Task[dict[str, Any]]] = set()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=cfg["hold_s"] + 15)
        for task in pending:
            task.cancel()
    records = [t.result() for t in done]
    records += [
        {"id": "?", "events": [], "first_event_s": None, "terminal": False, "error": "hung"}
        for _ in pending
    ]
    return {"records": records}


def load_main(role: str) -> None:
    cfg = json.loads(sys.stdin.readline())
    runner = run_gets if role == "gets" else run_sse
    emit("result", result=asyncio.run(runner(cfg)))


# --------------------------------------------------------------------------- orchestrator


class LoadProcess:
    """A load generator child (this script with --role), talking JSON lines on stdout."""

    def __init__(self, role: str, cfg: dict[str, Any]) -> None:
        self.role = role
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--role", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # tracebacks go straight to our stderr
            env=srv.server_env({}),
            start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(cfg) + "\n").encode())
        self.process.stdin.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(raw))
        self.lines.put(None)

    def wait_for(self, kind: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"{self.role} load process exited ({self.process.poll()})")
            if line.get("kind") == kind:
                return line
        raise RuntimeError(f"{self.role} load process: no {kind!r} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = p.cpu_times()
                total += times.user + times.system
    return total


def stored_events(
    db_path: Path, ids: list[str], postgres_url: str | None = None
) -> dict[str, list[tuple[str, str | None]]]:
    query = "SELECT consultation_id, status, stage FROM consultation_events ORDER BY id"
    if postgres_url is not None:
        import psycopg

        with psycopg.connect(postgres_url) as pg:
            rows = pg.execute(query).fetchall()
    else:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
    wanted = set(ids)
    per: dict[str, list[tuple[str, str | None]]] = {cid: [] for cid in ids}
    for cid, status, stage in rows:
        if cid in wanted:
            per[cid].append((status, stage))
    return per


def check_subscriber(record: dict[str, Any], stored: list[tuple[str, str | None]]) -> bool:
    """Did the subscriber get every change after its first event, in order, to the end?

    Its first event is the status when it connected (the latest stored event then); the rest
    must be exactly the stored events that follow that one. A change committed while the
    stream started may be sent twice (documented as harmless): one repeat is tolerated.
    """
    got = [(e[0], e[1]) for e in record["events"]]
    if not got or not record["terminal"]:
        return False
    later = got[1:]
    if later and later[0] == got[0]:
        later = later[1:]
    if not later:
        return got[0] == stored[-1]
    tail = stored[len(stored) - len(later) :]
    position = len(stored) - len(later) - 1
    return tail == later and position >= 0 and stored[position] == got[0]


def summarize_sse(
    records: list[dict[str, Any]], stored: dict[str, list[tuple[str, str | None]]]
) -> dict[str, Any]:
    errors = Counter(r["error"] for r in records if r["error"])
    first = [r["first_event_s"] for r in records if r["first_event_s"] is not None]
    lag = [
        e[3] - srv.parse_ts(e[2])
        for r in records
        for e in r["events"][1:]
        if e[2] is not None and r["events"][0][2] != e[2]
    ]
    complete = sum(1 for r in records if r["terminal"] and check_subscriber(r, stored[r["id"]]))
    return {
        "subscribers": len(records),
        "connected": len(first),
        "first_event_ms": stats_ms(first),
        "terminal_received": sum(1 for r in records if r["terminal"]),
        "complete_and_in_order": complete,
        "still_open_at_deadline": sum(1 for r in records if r.get("still_open_at_deadline")),
        "status_events_received": sum(len(r["events"]) for r in records),
        "delivery_lag_ms": stats_ms(lag),  # stored change (updated_at) -> arrived
        "keepalives": sum(r.get("keepalives", 0) for r in records),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
    }


def upload_consultations(base_url: str, key: str, count: int) -> list[str]:
    audio = (srv.DATA / "short_en.wav").read_bytes()
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    with srv.loopback_client(base_url=base_url, headers=headers, timeout=60) as client:
        for _ in range(count):
            response = client.post(
                "/api/consultations",
                files={"audio": ("short_en.wav", audio, "audio/wav")},
                data={"language": "en"},
            )
            if response.status_code != 202:
                raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
            ids.append(str(response.json()["id"]))
    return ids


def run(args: argparse.Namespace) -> dict[str, Any]:
    return srv.in_temp_dir("clinscribe-bench-load-", measure, args)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    srv.fake_servers_importable()
    from tests.fakes.openai_compat import FakeOpenAIServer

    stt_latency = args.stt_latency if args.stt_latency is not None else args.duration + 8.0
    workers = str(min(max(args.consultations, 2), 64))
    overrides = {
        "CLINSCRIBE_STT_PROVIDER": "openai",
        "CLINSCRIBE_OPENAI_STT__API_KEY": "bench-key",
        "CLINSCRIBE_OPENAI_STT__TIMEOUT_S": str(stt_latency + 60),
        "CLINSCRIBE_NOTE_PROVIDER": "extractive",
        "CLINSCRIBE_WORKER_CONCURRENCY": workers,
        "CLINSCRIBE_STT_CONCURRENCY": workers,
        "CLINSCRIBE_API_REQUESTS_PER_MINUTE": str(RATE_LIMIT),
        "CLINSCRIBE_IP_REQUESTS_PER_MINUTE": str(RATE_LIMIT),
        "CLINSCRIBE_LOG_LEVEL": args.log_level,
    }
    fake = server = worker = cluster = None
    app_url: str | None = None
    loads: list[LoadProcess] = []
    try:
        if args.postgres:
            from tests.support.postgres import PostgresCluster, postgres_bin

            bin_dir = postgres_bin()
            if bin_dir is None:
                raise SystemExit("--postgres needs Debian's postgresql package")
            cluster = PostgresCluster(bin_dir)
            cluster.start()
            app_name, sys_name = cluster.create_database("app"), cluster.create_database("sys")
            app_url = cluster.url(app_name, driver=False)
            overrides["CLINSCRIBE_DATABASE_URL"] = cluster.url(app_name)
            overrides["CLINSCRIBE_SYSTEM_DATABASE_URL"] = cluster.url(sys_name, driver=False)
        fake = FakeOpenAIServer(latency_s=stt_latency).start()
        overrides["CLINSCRIBE_OPENAI_STT__BASE_URL"] = fake.base_url
        server = srv.start_server(
            tmp,
            overrides,
            args=("serve", "--no-worker") if args.split else ("serve",),
            startup_timeout_s=args.startup_timeout,
        )
        if args.split:
            worker = srv.start_worker(server, startup_timeout_s=args.startup_timeout)
        key = srv.create_api_key(server)
        # One untimed consultation with an instant provider first: the worker loads the note
        # engine's dictionaries (seconds of CPU) at start, and the first note finishes that.
        fake.latency_s = 0.0
        warmup = upload_consultations(server.base_url, key, 1)[0]
        with srv.loopback_client(headers={"Authorization": f"Bearer {key}"}) as client:
            warmup_body = srv.wait_terminal(client, server.base_url, warmup, 120.0)
        warmup_status = str(warmup_body.get("status"))
        fake.latency_s = stt_latency
        ids = upload_consultations(server.base_url, key, args.consultations)
        uploaded_at = time.monotonic()
        common = {"base_url": server.base_url, "key": key, "ids": ids}
        hold_s = stt_latency + args.drain
        sse = LoadProcess(
            "sse",
            {**common, "subscribers": args.subscribers, "hold_s": hold_s, "connect_timeout": 30},
        )
        loads.append(sse)
        ready = sse.wait_for("ready", 60)
        connect_s = time.monotonic() - uploaded_at
        gets = LoadProcess(
            "gets",
            {
                **common,
                "rps": args.rps,
                "duration": args.duration,
                "request_timeout": 10.0,
                "max_connections": 64,
            },
        )
        loads.append(gets)
        with srv.RssSampler(server.pid, 0.25) as rss:
            gets.wait_for("started", 60)
            pids = [server.pid, gets.process.pid, sse.process.pid]
            pids += [worker.pid] if worker is not None else []
            cpu0, wall0 = [cpu_seconds(pid) for pid in pids], time.monotonic()
            get_result = gets.wait_for("result", args.duration + 90)["result"]
            cpu1, wall1 = [cpu_seconds(pid) for pid in pids], time.monotonic()
            cpu_percent = [
                round(100 * (b - a) / max(wall1 - wall0, 1e-9), 1)
                for a, b in zip(cpu0, cpu1, strict=True)
            ]
            sse_result = sse.wait_for("result", hold_s + 60)["result"]
        stored = stored_events(server.data_dir / "clinscribe.sqlite3", ids, app_url)
        processing_during_window = get_result["statuses_seen"]
    except Exception:
        if server is not None:
            print(f"--- server log tail ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        for load in loads:
            load.stop()
        exit_code = server.stop() if server is not None else None
        if worker is not None:
            worker.stop()
        if fake is not None:
            fake.stop()
        if cluster is not None:
            cluster.stop()
        if server is not None:
            server.save_log(args.server_log)
    needles = ("[error", "ERROR", "Traceback")
    log_errors = server.log_lines_matching(*needles)
    log_errors += worker.log_lines_matching(*needles) if worker is not None else []
    sse_summary = summarize_sse(sse_result["records"], stored)
    final_statuses = Counter(events[-1][0] if events else "none" for events in stored.values())
    return {
        "benchmark": "load_test",
        "duration_s": args.duration,
        "target_rps": args.rps,
        "subscribers": args.subscribers,
        "consultations": args.consultations,
        "stt_latency_s": stt_latency,
        "warmup_status": warmup_status,
        "rate_limits_per_minute": RATE_LIMIT,
        "subscribers_settled": ready["settled"],
        "subscribers_ready_after_upload_s": round(connect_s, 2),
        "gets": get_result,
        "get_statuses_seen": processing_during_window,
        "sse": sse_summary,
        "final_statuses": dict(final_statuses),
        "postgres": args.postgres,
        "processes": "api-only serve + 1 worker" if args.split else "1 serve (api + worker)",
        "server_cpu_percent": cpu_percent[0],
        "worker_cpu_percent": cpu_percent[3] if worker is not None else None,
        "load_cpu_percent": {"gets": cpu_percent[1], "sse": cpu_percent[2]},
        "host_load_avg_1m": round(os.getloadavg()[0], 2),
        "server_peak_rss_mib": srv.mib(rss.peak()),
        "host_cpus": os.cpu_count(),
        "server_exit_code": exit_code,
        "server_log_error_lines": len(log_errors),
        "server_log_error_examples": log_errors[:5],
        "target_met": (
            get_result["latency_ms"]["p99"] is not None
            and get_result["latency_ms"]["p99"] < TARGET_P99_MS
            and get_result["error_count"] == 0
            and sse_summary["error_count"] == 0
        ),
    }


def summary(r: dict[str, Any]) -> str:
    g, s = r["gets"], r["sse"]

    def row(name: str, d: dict[str, Any]) -> str:
        cells = "".join(f"{d[k] if d[k] is not None else '-':>9}" for k in ("p50", "p90", "p99"))
        return f"  {name:<28}{cells}{d['max'] if d['max'] is not None else '-':>9}"

    lines = [
        f"{r['consultations']} consultations transcribing (fake STT {r['stt_latency_s']:g} s per "
        f"request), {r['subscribers']} SSE subscribers, GET at {r['target_rps']:g}/s for "
        f"{r['duration_s']:g} s; all on 127.0.0.1, {r['host_cpus']} CPUs",
        f"processes: {r['processes']}, {'PostgreSQL' if r['postgres'] else 'SQLite'}",
        f"rate limits raised for the bench: CLINSCRIBE_API_REQUESTS_PER_MINUTE and "
        f"CLINSCRIBE_IP_REQUESTS_PER_MINUTE = {r['rate_limits_per_minute']}",
        "",
        f"  {'ms':<28}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
        row("GET latency (from due time)", g["latency_ms"]),
        row("GET service time", g["service_ms"]),
        row("GET client queueing", g["send_lag_ms"]),
        row("SSE time to first event", s["first_event_ms"]),
        row("SSE change -> delivered", s["delivery_lag_ms"]),
        "",
        f"GET: {g['answered']}/{g['requests']} answered, {g['achieved_rps']}/s, "
        f"errors {g['error_count']} {g['errors'] or ''}; statuses seen {r['get_statuses_seen']}",
        f"GET answers over {TARGET_P99_MS:g} ms: {g['over_target']}, in "
        f"{g['seconds_with_over_target']} of the window's {r['duration_s']:g} seconds",
        f"SSE: {s['connected']}/{s['subscribers']} got a first event "
        f"({r['subscribers_ready_after_upload_s']} s after the uploads), "
        f"{s['terminal_received']} got the terminal status, {s['complete_and_in_order']} got "
        f"every later change in order, {s['still_open_at_deadline']} still open at the "
        f"deadline, errors {s['error_count']} {s['errors'] or ''}",
        f"consultations ended {r['final_statuses']}",
        f"load generators' CPU {r['load_cpu_percent']} %, host load average "
        f"{r['host_load_avg_1m']} (other processes compete for the same CPUs)",
        (
            f"worker: CPU {r['worker_cpu_percent']} % during the GET window"
            if r["worker_cpu_percent"] is not None
            else "worker: in the server process"
        ),
        f"server: CPU {r['server_cpu_percent']} % during the GET window, peak RSS "
        f"{r['server_peak_rss_mib']} MiB, exit code {r['server_exit_code']}, log error lines "
        f"{r['server_log_error_lines']}",
        *(f"  {line[:200]}" for line in r["server_log_error_examples"]),
        f"target (GET p99 < {TARGET_P99_MS:g} ms, zero errors): "
        + ("met" if r["target_met"] else "NOT met"),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="GET window, s (30)")
    parser.add_argument("--rps", type=float, default=200, help="GET requests per second (200)")
    parser.add_argument("--subscribers", type=int, default=200, help="SSE streams (200)")
    parser.add_argument("--consultations", type=int, default=10, help="processing (10)")
    parser.add_argument(
        "--stt-latency", type=float, help="fake provider seconds per request (duration + 8)"
    )
    parser.add_argument(
        "--drain", type=float, default=30, help="s to wait for the end after the STT (30)"
    )
    parser.add_argument("--log-level", default="WARNING", help="server log level (WARNING)")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds (60)")
    parser.add_argument("--server-log", metavar="FILE", help="keep a copy of the server log")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="both databases on a private PostgreSQL server (Debian's) instead of SQLite",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="`serve --no-worker` answers the load; one `clinscribe worker` runs the workflows",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--role", choices=["gets", "sse"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        load_main(args.role)
        return
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600")
    if not 1 <= args.rps <= 2000:
        parser.error("--rps must be between 1 and 2000")
    if not 0 <= args.subscribers <= 2000:
        parser.error("--subscribers must be between 0 and 2000")
    if not 1 <= args.consultations <= 64:
        parser.error("--consultations must be between 1 and 64")
    if args.stt_latency is not None and not 0 <= args.stt_latency <= 600:
        parser.error("--stt-latency must be between 0 and 600")
    srv.exit_cleanly_on_sigterm()
    result = run(args)
    print(json.dumps(result) if args.json else summary(result))


if __name__ == "__main__":
    main()
