"""Pipeline throughput: many short consultations through `clinscribe serve` end to end.

Starts the server with an instant fake OpenAI-compatible speech-to-text provider (latency 0) and
the extractive note writer, uploads ``--count`` copies of tests/data/short_en.wav with
``--concurrency`` async clients, then polls the list endpoint until every consultation is
terminal (deadline ``--timeout``). The server's own timestamps give the end-to-end numbers;
after the server stops, its consultation_events table (status/stage changes) splits each
consultation into queue wait and processing, and processing into stages.

Every request carries a clinician API key made with the CLI once the server is up. The
per-key and per-IP rate limits are raised far above what the bench sends (thousands of
uploads and a paginated list poll would otherwise get 429s), and the summary says so.

"Orchestration per consultation" = processing time (first `processing` event -> completed)
minus the fake provider's mean time per request: what the service itself costs (decode, DB
writes, DBOS checkpoints, note writing) when speech-to-text is free.

    .venv/bin/python bench/pipeline_throughput.py [--count 200] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _server as srv
import httpx

RATE_LIMIT = 1_000_000  # per minute, per key and per IP: far above what the bench sends


@dataclass
class Upload:
    started: float  # wall clock (time.time())
    latency_s: float
    status: int
    consultation_id: str | None
    error: str | None = None


def stats_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "mean": None, "max": None}
    return {
        "p50": round(srv.percentile(values, 50) * 1000, 1),
        "p95": round(srv.percentile(values, 95) * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


async def upload_all(
    client: httpx.AsyncClient, api: str, audio: bytes, count: int, concurrency: int
) -> list[Upload]:
    results: list[Upload] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for _ in next_index:
            started, t0 = time.time(), time.perf_counter()
            try:
                response = await client.post(
                    api,
                    files={"audio": ("short_en.wav", audio, "audio/wav")},
                    data={"language": "en"},
                )
                body = response.json() if response.status_code == 202 else None
                results.append(
                    Upload(
                        started,
                        time.perf_counter() - t0,
                        response.status_code,
                        body["id"] if body else None,
                        None if body else response.text[:300],
                    )
                )
            except httpx.HTTPError as exc:
                results.append(
                    Upload(started, time.perf_counter() - t0, 0, None, type(exc).__name__)
                )

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def list_all(client: httpx.AsyncClient, api: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(api, params=params)
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def wait_all_terminal(
    client: httpx.AsyncClient, api: str, ids: set[str], deadline: float, interval_s: float
) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    while True:
        for item in await list_all(client, api):
            if item["id"] in ids:
                latest[item["id"]] = item
        done = sum(1 for item in latest.values() if item["status"] in srv.TERMINAL)
        if done == len(ids) or time.monotonic() > deadline:
            return latest
        await asyncio.sleep(interval_s)


async def wait_one(client: httpx.AsyncClient, api: str, cid: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = str((await client.get(f"{api}/{cid}")).json()["status"])
        if status in srv.TERMINAL or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


def event_timings(db_path: Path, ids: set[str]) -> dict[str, Any]:
    """Queue wait, processing time and per-stage time from the consultation_events table."""
    if not db_path.exists():
        return {"available": False}
    connection = sqlite3.connect(db_path)
    try:
        rows = connection.execute(
            "SELECT consultation_id, status, stage, created_at FROM consultation_events ORDER BY id"
        ).fetchall()
    except sqlite3.Error as exc:
        return {"available": False, "reason": str(exc)}
    finally:
        connection.close()
    per: dict[str, list[tuple[str, str | None, float]]] = {}
    for cid, status, stage, created in rows:
        if cid in ids:
            per.setdefault(cid, []).append((status, stage, srv.parse_ts(created)))
    queue_wait: list[float] = []
    processing: list[float] = []
    stages: dict[str, list[float]] = {}
    for events in per.values():
        created = events[0][2]
        started = next((t for s, _, t in events if s == "processing"), None)
        ended = next((t for s, _, t in events if s == "completed"), None)
        if started is None or ended is None:
            continue
        queue_wait.append(started - created)
        processing.append(ended - started)
        # A stage lasts from its first event to the next event with another stage.
        marks: list[tuple[str, float]] = []
        for status, stage, t in events:
            if status == "processing" and stage and (not marks or marks[-1][0] != stage):
                marks.append((stage, t))
        marks.append(("end", ended))
        for (stage, t), (_, t_next) in itertools.pairwise(marks):
            stages.setdefault(stage, []).append(t_next - t)
    return {
        "available": True,
        "queue_wait_ms": stats_ms(queue_wait),
        "processing_ms": stats_ms(processing),
        "stage_mean_ms": {k: round(statistics.fmean(v) * 1000, 1) for k, v in stages.items()},
        "events": len(rows),
    }


async def drive(
    args: argparse.Namespace, server: srv.Server, fake: Any, key: str
) -> dict[str, Any]:
    api = f"{server.base_url}/api/consultations"
    audio = (srv.DATA / "short_en.wav").read_bytes()
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    headers = {"Authorization": f"Bearer {key}"}
    async with srv.loopback_async_client(timeout=60.0, limits=limits, headers=headers) as client:
        warm = []
        for _ in range(args.warmup):
            response = await client.post(api, files={"audio": ("w.wav", audio, "audio/wav")})
            response.raise_for_status()
            warm.append(await wait_one(client, api, response.json()["id"], 60.0))
        stt_before = len(fake.transcription_requests())
        deadline = time.monotonic() + args.timeout
        uploads = await upload_all(client, api, audio, args.count, args.concurrency)
        ids = {u.consultation_id for u in uploads if u.consultation_id}
        latest = await wait_all_terminal(client, api, ids, deadline, args.poll_interval)
    return {"warmup": warm, "uploads": uploads, "latest": latest, "stt_before": stt_before}


def run(args: argparse.Namespace) -> dict[str, Any]:
    return srv.in_temp_dir("clinscribe-bench-throughput-", measure, args)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    srv.fake_servers_importable()
    from tests.fakes.openai_compat import FakeOpenAIServer

    fake = server = None
    try:
        fake = FakeOpenAIServer(latency_s=0.0).start()
        server = srv.start_server(
            tmp,
            {
                "CLINSCRIBE_STT_PROVIDER": "openai",
                "CLINSCRIBE_OPENAI_STT__BASE_URL": fake.base_url,
                "CLINSCRIBE_OPENAI_STT__API_KEY": "bench-key",
                "CLINSCRIBE_NOTE_PROVIDER": "extractive",
                "CLINSCRIBE_WORKER_CONCURRENCY": str(args.worker_concurrency),
                "CLINSCRIBE_API_REQUESTS_PER_MINUTE": str(RATE_LIMIT),
                "CLINSCRIBE_IP_REQUESTS_PER_MINUTE": str(RATE_LIMIT),
                "CLINSCRIBE_LOG_LEVEL": args.log_level,
            },
            startup_timeout_s=args.startup_timeout,
        )
        key = srv.create_api_key(server)
        with srv.RssSampler(server.pid, 0.25) as rss:
            outcome = asyncio.run(drive(args, server, fake, key))
        uploads: list[Upload] = outcome["uploads"]
        latest: dict[str, dict[str, Any]] = outcome["latest"]
        ids = set(latest)
        stt_requests = fake.transcription_requests()[outcome["stt_before"] :]
    except Exception:
        if server is not None:
            print(f"--- server log tail ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        exit_code = server.stop() if server is not None else None
        if fake is not None:
            fake.stop()
        if server is not None:
            server.save_log(args.server_log)
    timings = event_timings(server.data_dir / "clinscribe.sqlite3", ids)
    log_errors = server.log_lines_matching("[error", "ERROR", "Traceback")

    accepted = [u for u in uploads if u.status == 202]
    statuses = Counter(item["status"] for item in latest.values())
    statuses["never_seen"] = len(accepted) - len(latest)
    errors = Counter(
        (item.get("error") or {}).get("code")
        for item in latest.values()
        if item["status"] == "failed"
    )
    completed = [item for item in latest.values() if item["status"] == "completed"]
    first_start = min(u.started for u in uploads)
    ends = [srv.parse_ts(item["completed_at"] or item["updated_at"]) for item in latest.values()]
    last_end = max(ends) if ends else first_start
    e2e = [srv.parse_ts(i["completed_at"]) - srv.parse_ts(i["created_at"]) for i in completed]
    provider = [r.finished_at - r.received_at for r in stt_requests if r.finished_at]
    provider_mean = statistics.fmean(provider) if provider else 0.0
    result: dict[str, Any] = {
        "benchmark": "pipeline_throughput",
        "count": args.count,
        "concurrency": args.concurrency,
        "worker_concurrency": args.worker_concurrency,
        "rate_limits_per_minute": RATE_LIMIT,
        "warmup_statuses": outcome["warmup"],
        "uploads_accepted": len(accepted),
        "upload_errors": Counter(f"{u.status} {u.error}" for u in uploads if u.status != 202),
        "statuses": dict(statuses),
        "failed": statuses.get("failed", 0),
        "failed_error_codes": dict(errors),
        "wall_s": round(last_end - first_start, 2),
        "upload_phase_s": round(max(u.started + u.latency_s for u in uploads) - first_start, 2),
        "consultations_per_s": round(len(completed) / (last_end - first_start), 2),
        "upload_latency_ms": stats_ms([u.latency_s for u in accepted]),
        "created_to_completed_ms": stats_ms(e2e),
        "provider_requests": len(stt_requests),
        "provider_ms": stats_ms(provider),
        "server_peak_rss_mib": srv.mib(rss.peak()),
        "server_exit_code": exit_code,
        "server_log_error_lines": len(log_errors),
        "server_log_error_examples": log_errors[:5],
        **{f"events_{k}": v for k, v in timings.items()},
    }
    processing = timings.get("processing_ms") or {}
    if processing.get("mean") is not None:
        result["orchestration_ms_per_consultation"] = {
            k: round(v - provider_mean * 1000, 1)
            for k, v in processing.items()
            if v is not None and k != "max"
        }
    return result


def summary(r: dict[str, Any]) -> str:
    def fmt(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())

    lines = [
        f"{r['count']} consultations, {r['concurrency']} upload clients, worker concurrency "
        f"{r['worker_concurrency']}: {r['uploads_accepted']} accepted, statuses {r['statuses']}"
        + (f", failed codes {r['failed_error_codes']}" if r["failed"] else ""),
        f"rate limits raised for the bench: CLINSCRIBE_API_REQUESTS_PER_MINUTE and "
        f"CLINSCRIBE_IP_REQUESTS_PER_MINUTE = {r['rate_limits_per_minute']}",
        f"wall (first upload -> last completion) {r['wall_s']} s = "
        f"{r['consultations_per_s']} consultations/s (uploads took {r['upload_phase_s']} s)",
        f"upload latency ms: {fmt(r['upload_latency_ms'])}",
        f"created -> completed ms: {fmt(r['created_to_completed_ms'])}",
    ]
    if r.get("events_available"):
        lines += [
            f"  queue wait ms: {fmt(r['events_queue_wait_ms'])}",
            f"  processing ms: {fmt(r['events_processing_ms'])}",
            f"  stage means ms: {fmt(r['events_stage_mean_ms'])}",
        ]
    lines.append(f"fake provider: {r['provider_requests']} requests, ms {fmt(r['provider_ms'])}")
    if "orchestration_ms_per_consultation" in r:
        lines.append(
            "orchestration ms per consultation (processing - provider): "
            + fmt(r["orchestration_ms_per_consultation"])
        )
    lines.append(
        f"server peak RSS {r['server_peak_rss_mib']} MiB, exit code {r['server_exit_code']}, "
        f"log error lines {r['server_log_error_lines']}"
    )
    lines.extend(f"  {line[:200]}" for line in r["server_log_error_examples"])
    if r["upload_errors"]:
        lines.append(f"upload errors: {dict(r['upload_errors'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="consultations (200)")
    parser.add_argument("--concurrency", type=int, default=8, help="upload clients (8)")
    parser.add_argument(
        "--worker-concurrency", type=int, default=4, help="CLINSCRIBE_WORKER_CONCURRENCY (4)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed consultations first (1)")
    parser.add_argument("--timeout", type=float, default=600, help="overall deadline, s (600)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="status poll, s (0.5)")
    parser.add_argument("--log-level", default="WARNING", help="server log level (WARNING)")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds (60)")
    parser.add_argument("--server-log", metavar="FILE", help="keep a copy of the server log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.count <= 5000:
        parser.error("--count must be between 1 and 5000")
    if not 1 <= args.concurrency <= 64:
        parser.error("--concurrency must be between 1 and 64")
    if not 1 <= args.worker_concurrency <= 64:
        parser.error("--worker-concurrency must be between 1 and 64")
    srv.exit_cleanly_on_sigterm()
    result = run(args)
    print(json.dumps(result) if args.json else summary(result))


if __name__ == "__main__":
    main()
