"""Chunked transcription: a 30-minute consultation, pieces in parallel vs one by one.

Builds a ``--minutes`` long 16 kHz mono WAV in a temp dir by repeating
tests/data/consultation_en.wav (streamed frame block by frame block), starts the fake Reverie
provider with ``--latency`` seconds of recognition time per audio-minute, then runs
`clinscribe serve` twice, each with a fresh data directory: CLINSCRIBE_STT_CONCURRENCY=1 (pieces
one by one) and =``--parallel``. Each run uploads the file, polls until the consultation is
terminal (deadline ``--timeout``) and reports:

- wall time from the upload's 202 to the first poll that sees ``completed``;
- the ``transcribing`` stage (VAD planning, the pieces, the merge) from the consultation_events
  table of the stopped server's SQLite database;
- the pieces the fake received (stt_file requests), their longest audio, the most that were in
  flight at once, the span from the first piece received to the last answered, and the fake's
  ``limit_violations`` (pieces over Reverie's 300 s; must be 0);
- the transcribing stage minus that span: VAD planning, queue polls and the merge, the part
  that parallel pieces cannot shorten.

The ratio serial / parallel is printed for the wall time and for the transcribing stage.

    .venv/bin/python bench/chunked_transcription.py [--minutes 30] [--parallel 4] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
import time
import wave
from pathlib import Path
from typing import Any

import _server as srv

API_KEY, APP_ID = "bench-rev-key", "bench-rev-app"
_BLOCK_FRAMES = 65_536  # ~4 s of audio per read/write


def build_consultation_wav(target: Path, minutes: float) -> float:
    """Write ``minutes`` of audio by looping the test consultation, one block at a time (neither
    the source nor the result is ever held in memory). Returns the audio seconds written."""
    with wave.open(str(srv.DATA / "consultation_en.wav"), "rb") as src:
        params = src.getparams()
        if (params.nchannels, params.sampwidth, params.framerate) != (1, 2, 16_000):
            raise SystemExit(f"unexpected source WAV format: {params}")
        wanted = int(minutes * 60 * params.framerate)
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(params.framerate)
            written = 0
            while written < wanted:  # bounded: every pass writes at least one frame
                if src.tell() >= params.nframes:
                    src.rewind()
                block = src.readframes(min(_BLOCK_FRAMES, wanted - written))
                if not block:
                    raise SystemExit("consultation_en.wav yielded no frames")
                out.writeframes(block)
                written += len(block) // params.sampwidth
    return written / params.framerate


def stage_seconds(db_path: Path, cid: str) -> dict[str, Any]:
    """Processing time and per-stage time of one consultation from consultation_events."""
    if not db_path.exists():
        return {"available": False, "reason": f"{db_path.name} missing"}
    connection = sqlite3.connect(db_path)
    try:
        rows = connection.execute(
            "SELECT status, stage, created_at FROM consultation_events "
            "WHERE consultation_id = ? ORDER BY id",
            (cid,),
        ).fetchall()
    except sqlite3.Error as exc:
        return {"available": False, "reason": str(exc)}
    finally:
        connection.close()
    events = [(status, stage, srv.parse_ts(created)) for status, stage, created in rows]
    started = next((t for s, _, t in events if s == "processing"), None)
    ended = next((t for s, _, t in events if s == "completed"), None)
    if started is None or ended is None:
        return {"available": False, "reason": "no processing/completed events"}
    # A stage lasts from its first event to the next event with another stage.
    marks: list[tuple[str, float]] = []
    for status, stage, t in events:
        if status == "processing" and stage and (not marks or marks[-1][0] != stage):
            marks.append((stage, t))
    marks.append(("end", ended))
    stages: dict[str, float] = {}
    for (stage, t), (_, t_next) in itertools.pairwise(marks):
        stages[stage] = round(stages.get(stage, 0.0) + t_next - t, 2)
    return {"available": True, "processing_s": round(ended - started, 2), "stages_s": stages}


def max_in_flight(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end at t closes before a start at t)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def upload_and_wait(
    server: srv.Server, key: str, wav: Path, timeout_s: float, poll_s: float
) -> dict[str, Any]:
    api = f"{server.base_url}/api/consultations"
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {key}"}
    with (
        srv.loopback_client(timeout=60.0, headers=headers) as client,
        wav.open("rb") as handle,
    ):
        t0 = time.monotonic()
        response = client.post(
            api,
            files={"audio": (wav.name, handle, "audio/wav")},  # streamed from disk
            data={"language": "en"},
            timeout=timeout_s,
        )
        accepted = time.monotonic()
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
        cid = str(response.json()["id"])
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = client.get(f"{api}/{cid}").json()
            if body.get("status") in srv.TERMINAL:
                break
            time.sleep(poll_s)
        seen = time.monotonic()
    status = body.get("status")
    return {
        "consultation_id": cid,
        "status": status,
        "stage": body.get("stage"),
        "error_code": (body.get("error") or {}).get("code"),
        "upload_to_202_s": round(accepted - t0, 2),
        "wall_s": round(seen - accepted, 2) if status == "completed" else None,
    }


def one_run(
    args: argparse.Namespace, work: Path, wav: Path, fake: Any, concurrency: int
) -> dict[str, Any]:
    """Serve with CLINSCRIBE_STT_CONCURRENCY=``concurrency``, transcribe ``wav`` once."""
    work.mkdir()
    before, violations_before = len(fake.requests), fake.limit_violations
    server = None
    try:
        server = srv.start_server(
            work,
            {
                "CLINSCRIBE_STT_PROVIDER": "reverie",
                "CLINSCRIBE_REVERIE__BASE_URL": fake.base_url,
                "CLINSCRIBE_REVERIE__API_KEY": API_KEY,
                "CLINSCRIBE_REVERIE__APP_ID": APP_ID,
                "CLINSCRIBE_DEFAULT_LANGUAGE": "en",
                "CLINSCRIBE_MAX_UPLOAD_MB": "200",
                "CLINSCRIBE_NOTE_PROVIDER": "extractive",
                "CLINSCRIBE_STT_CONCURRENCY": str(concurrency),
                "CLINSCRIBE_LOG_LEVEL": args.log_level,
            },
            startup_timeout_s=args.startup_timeout,
        )
        key = srv.create_api_key(server)
        outcome = upload_and_wait(server, key, wav, args.timeout, args.poll_interval)
        if outcome["status"] != "completed":
            print(
                f"--- server log tail (concurrency {concurrency}, status {outcome['status']}) "
                f"---\n{server.log_tail()}",
                file=sys.stderr,
            )
    except Exception:
        if server is not None:
            print(f"--- server log tail ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        exit_code = server.stop() if server is not None else None
        if server is not None and args.server_logs:
            server.save_log(Path(args.server_logs) / f"concurrency-{concurrency}.log")
    pieces = [r for r in fake.requests[before:] if r.path == "/"]
    answered = [r for r in pieces if r.finished_at is not None]
    spans = [(r.received_at, r.finished_at) for r in answered]
    seconds = [r.audio_duration_s for r in pieces if r.audio_duration_s is not None]
    provider_span = max(e for _, e in spans) - min(s for s, _ in spans) if spans else None
    timings = stage_seconds(server.data_dir / "clinscribe.sqlite3", outcome["consultation_id"])
    transcribing = timings.get("stages_s", {}).get("transcribing")
    return {
        "stt_concurrency": concurrency,
        **outcome,
        **timings,
        "chunk_requests": len(pieces),
        "chunk_statuses": sorted({r.status for r in answered}),
        "batch_uploads": sum(1 for r in fake.requests[before:] if r.path == "/upload"),
        "chunk_audio_max_s": round(max(seconds), 1) if seconds else None,
        "chunk_audio_total_s": round(sum(seconds), 1),
        "chunks_in_flight_max": max_in_flight(spans),
        "provider_span_s": round(provider_span, 2) if provider_span is not None else None,
        # VAD planning, queue polling and the merge: what parallel pieces cannot shorten.
        "transcribing_outside_provider_s": (
            round(transcribing - provider_span, 2)
            if transcribing is not None and provider_span is not None
            else None
        ),
        "limit_violations": fake.limit_violations - violations_before,
        "server_exit_code": exit_code,
        "server_log_error_lines": len(server.log_lines_matching("[error", "ERROR", "Traceback")),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return srv.in_temp_dir("clinscribe-bench-chunked-", measure, args)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    srv.fake_servers_importable()
    from tests.fakes.reverie import FILE_LIMIT_S, FakeReverieServer

    wav = tmp / "consultation_30min.wav"
    started = time.monotonic()
    audio_s = build_consultation_wav(wav, args.minutes)
    result: dict[str, Any] = {
        "benchmark": "chunked_transcription",
        "audio_minutes": round(audio_s / 60, 2),
        "file_mib": srv.mib(wav.stat().st_size),
        "build_s": round(time.monotonic() - started, 1),
        "latency_per_audio_minute_s": args.latency,
        "provider_limit_s": FILE_LIMIT_S,
    }
    fake = FakeReverieServer(
        api_key=API_KEY, app_id=APP_ID, latency_per_audio_minute_s=args.latency
    ).start()
    try:
        result["serial"] = one_run(args, tmp / "serial", wav, fake, 1)
        result["parallel"] = one_run(args, tmp / "parallel", wav, fake, args.parallel)
    finally:
        fake.stop()
    serial, parallel = result["serial"], result["parallel"]
    if serial["wall_s"] and parallel["wall_s"]:
        result["wall_ratio"] = round(serial["wall_s"] / parallel["wall_s"], 2)
    transcribing = [r.get("stages_s", {}).get("transcribing") for r in (serial, parallel)]
    if all(transcribing):
        result["transcribing_ratio"] = round(transcribing[0] / transcribing[1], 2)
    return result


def summary(r: dict[str, Any]) -> str:
    lines = [
        f"{r['audio_minutes']} min consultation ({r['file_mib']} MiB WAV, built in "
        f"{r['build_s']} s); fake Reverie at {r['latency_per_audio_minute_s']} s per "
        f"audio-minute, per-request limit {r['provider_limit_s']:.0f} s",
    ]
    for label in ("serial", "parallel"):
        x = r[label]
        lines += [
            f"{label} (CLINSCRIBE_STT_CONCURRENCY={x['stt_concurrency']}): {x['status']}"
            + (f" ({x['error_code']} at {x['stage']})" if x["error_code"] else "")
            + f", 202 -> completed {x['wall_s']} s (upload took {x['upload_to_202_s']} s)",
            f"  stages s: {x.get('stages_s', x.get('reason'))}",
            f"  {x['chunk_requests']} chunk requests (statuses {x['chunk_statuses']}, "
            f"{x['batch_uploads']} batch uploads), audio max {x['chunk_audio_max_s']} s / total "
            f"{x['chunk_audio_total_s']} s, max in flight {x['chunks_in_flight_max']}, "
            f"provider span {x['provider_span_s']} s, limit violations {x['limit_violations']}",
            f"  transcribing outside the provider span (VAD plan, queue polls, merge) "
            f"{x['transcribing_outside_provider_s']} s",
            f"  server exit code {x['server_exit_code']}, log error lines "
            f"{x['server_log_error_lines']}",
        ]
    lines.append(
        f"ratio serial / parallel: wall {r.get('wall_ratio')}, "
        f"transcribing stage {r.get('transcribing_ratio')}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="recording length (30)")
    parser.add_argument(
        "--latency", type=float, default=0.3, help="fake seconds per audio-minute (0.3)"
    )
    parser.add_argument(
        "--parallel", type=int, default=4, help="CLINSCRIBE_STT_CONCURRENCY of the parallel run (4)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="deadline per run, s (600)")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="status poll, s (0.1)")
    parser.add_argument("--log-level", default="INFO", help="server log level (INFO)")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds (60)")
    parser.add_argument("--server-logs", metavar="DIR", help="keep both server logs in DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.minutes <= 100:
        parser.error("--minutes must be between 1 and 100 (the 200 MB upload limit)")
    if not 0 <= args.latency <= 60:
        parser.error("--latency must be between 0 and 60")
    if not 1 <= args.parallel <= 64:
        parser.error("--parallel must be between 1 and 64")
    if args.server_logs and not Path(args.server_logs).is_dir():
        parser.error(f"--server-logs {args.server_logs} is not a directory")
    srv.exit_cleanly_on_sigterm()
    result = run(args)
    print(json.dumps(result) if args.json else summary(result))
    runs = (result["serial"], result["parallel"])
    if any(x["status"] != "completed" or x["limit_violations"] for x in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
