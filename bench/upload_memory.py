"""Server memory while a large recording is uploaded: does the upload stream to disk?

Builds a long 16 kHz mono WAV (default 300 MiB, ~2.7 h) in a temp dir by repeating
tests/data/consultation_en.wav, starts `clinscribe serve` with a fake OpenAI-compatible STT
provider, measures the server's idle RSS after one small warm-up consultation, then uploads the
big file streamed from disk while a thread samples the server's RSS (children included) every
50 ms. Reports idle RSS, peak RSS until the 202 arrives, peak - idle (target < 100 MiB), upload
time and throughput. The 202 arrives only after the server has decoded the whole file
(validation), so the upload time is split into "body sent" and "validated".

After the 202 the server starts processing the huge file (the fake's 25 MB per-file limit makes
it fail); that phase is measured only with --include-processing.

    .venv/bin/python bench/upload_memory.py [--size-mb 300] [--include-processing] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

import _server as srv
import psutil


def build_long_wav(target: Path, size_bytes: int) -> tuple[int, float]:
    """Write a WAV of about ``size_bytes`` by repeating the test consultation; stream, never
    holding more than one copy of the 1.6 MB source clip in memory. Returns (bytes, seconds)."""
    with wave.open(str(srv.DATA / "consultation_en.wav"), "rb") as src:
        params = src.getparams()
        if (params.nchannels, params.sampwidth, params.framerate) != (1, 2, 16_000):
            raise SystemExit(f"unexpected source WAV format: {params}")
        frames = src.readframes(params.nframes)
    frame_bytes = params.nchannels * params.sampwidth
    with wave.open(str(target), "wb") as out:
        out.setnchannels(params.nchannels)
        out.setsampwidth(params.sampwidth)
        out.setframerate(params.framerate)
        written = 0
        while written + len(frames) <= size_bytes:
            out.writeframesraw(frames)
            written += len(frames)
        rest = (size_bytes - written) // frame_bytes * frame_bytes
        if rest:
            out.writeframesraw(frames[:rest])
            written += rest
    return target.stat().st_size, written / frame_bytes / params.framerate


def run(args: argparse.Namespace) -> dict[str, Any]:
    return srv.in_temp_dir("clinscribe-bench-upload-", measure, args)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    srv.fake_servers_importable()
    from tests.fakes.openai_compat import FakeOpenAIServer

    fake = server = None
    result: dict[str, Any] = {"benchmark": "upload_memory"}
    try:
        big = tmp / "long_consultation.wav"
        started = time.monotonic()
        size, audio_s = build_long_wav(big, int(args.size_mb * srv.MB))
        result["file"] = {
            "bytes": size,
            "mib": srv.mib(size),
            "audio_hours": round(audio_s / 3600, 2),
            "build_s": round(time.monotonic() - started, 1),
        }

        fake = FakeOpenAIServer().start()
        server = srv.start_server(
            tmp,
            {
                "CLINSCRIBE_STT_PROVIDER": "openai",
                "CLINSCRIBE_OPENAI_STT__BASE_URL": fake.base_url,
                "CLINSCRIBE_OPENAI_STT__API_KEY": "bench-key",
                "CLINSCRIBE_MAX_AUDIO_MINUTES": "600",
                "CLINSCRIBE_MAX_UPLOAD_MB": "1000",
            },
            startup_timeout_s=args.startup_timeout,
        )
        key = srv.create_api_key(server)
        api = f"{server.base_url}/api/consultations"
        headers = {"Authorization": f"Bearer {key}"}
        with srv.loopback_client(timeout=30.0, headers=headers) as client:
            # Warm-up: one small consultation through the whole pipeline.
            short = (srv.DATA / "short_en.wav").read_bytes()
            response = client.post(api, files={"audio": ("short.wav", short, "audio/wav")})
            if response.status_code != 202:
                raise RuntimeError(
                    f"warm-up upload answered {response.status_code}: {response.text}"
                )
            warm = srv.wait_terminal(client, server.base_url, response.json()["id"], 60.0)
            result["warmup_status"] = warm.get("status")

            time.sleep(1.0)
            with srv.RssSampler(server.pid, args.interval_ms / 1000) as idle:
                time.sleep(2.0)
            idle_rss = int(statistics.median(s.rss for s in idle.samples if s.rss))

            with big.open("rb") as handle:
                # The sampler also records how far httpx has read the file (body progress).
                sampler = srv.RssSampler(server.pid, args.interval_ms / 1000, probe=handle.tell)
                own = srv.RssSampler(psutil.Process().pid, 0.2, include_children=False)
                with sampler, own:
                    t0 = time.monotonic()
                    response = client.post(
                        api,
                        files={"audio": (big.name, handle, "audio/wav")},  # streamed from disk
                        data={"language": "en"},
                        timeout=args.upload_timeout,
                    )
                    t_accepted = time.monotonic()
                    if args.include_processing and response.status_code == 202:
                        time.sleep(args.processing_window)
                    t_end = time.monotonic()
            if response.status_code != 202:
                raise RuntimeError(
                    f"big upload answered {response.status_code}: {response.text[:500]}"
                )
            sent = [s.t for s in sampler.samples if s.extra is not None and s.extra >= size]
            t_sent = min(sent) if sent else None
            upload_s = t_accepted - t0
            peak = sampler.peak(t0, t_accepted)
            result["server_rss_mib"] = {
                "idle": srv.mib(idle_rss),
                "peak_during_upload": srv.mib(peak),
                "peak_minus_idle": srv.mib(peak - idle_rss),
                "target_peak_minus_idle": 100,
            }
            result["upload"] = {
                "status": response.status_code,
                "seconds_to_202": round(upload_s, 2),
                "mib_per_s": round(size / srv.MB / upload_s, 1),
                "body_sent_s": round(t_sent - t0, 2) if t_sent else None,
                "validate_after_body_s": round(t_accepted - t_sent, 2) if t_sent else None,
                "samples": len(sampler.between(t0, t_accepted)),
                "client_peak_rss_mib": srv.mib(own.peak()),
            }
            if args.include_processing:
                cid = response.json()["id"]
                after = client.get(f"{api}/{cid}").json()
                result["processing"] = {
                    "window_s": args.processing_window,
                    "peak_rss_mib": srv.mib(sampler.peak(t_accepted, t_end)),
                    "peak_minus_idle_mib": srv.mib(sampler.peak(t_accepted, t_end) - idle_rss),
                    "status_after_window": after.get("status"),
                    "stage_after_window": after.get("stage"),
                    "error_code": (after.get("error") or {}).get("code"),
                }
        return result
    except Exception:
        if server is not None:
            print(f"--- server log tail ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            result["server_exit_code"] = server.stop(timeout_s=10)
            result["server_log_errors"] = server.log_lines_matching("[error", "ERROR", "Traceback")
            server.save_log(args.server_log)
        if fake is not None:
            fake.stop()


def summary(r: dict[str, Any]) -> str:
    f, m, u = r["file"], r["server_rss_mib"], r["upload"]
    lines = [
        f"file: {f['mib']} MiB WAV, {f['audio_hours']} h of audio (built in {f['build_s']} s); "
        f"warm-up consultation {r['warmup_status']}",
        f"server RSS idle {m['idle']} MiB, peak during upload {m['peak_during_upload']} MiB, "
        f"peak - idle {m['peak_minus_idle']} MiB (target < {m['target_peak_minus_idle']})",
        f"upload: 202 after {u['seconds_to_202']} s = {u['mib_per_s']} MiB/s "
        f"(body sent after {u['body_sent_s']} s, then {u['validate_after_body_s']} s decoding "
        f"to validate); client peak RSS {u['client_peak_rss_mib']} MiB",
    ]
    if "processing" in r:
        p = r["processing"]
        lines.append(
            f"processing, next {p['window_s']} s: peak {p['peak_rss_mib']} MiB "
            f"(+{p['peak_minus_idle_mib']} over idle); then {p['status_after_window']}/"
            f"{p['stage_after_window']} {p['error_code'] or ''}".rstrip()
        )
    errors = r.get("server_log_errors") or []
    lines.append(f"server exit code {r.get('server_exit_code')}, log error lines {len(errors)}")
    lines.extend(f"  {line[:200]}" for line in errors[:8])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=300, help="WAV size in MiB (300)")
    parser.add_argument("--interval-ms", type=float, default=50, help="RSS sampling period (50)")
    parser.add_argument(
        "--include-processing",
        action="store_true",
        help="also sample the processing that follows the 202",
    )
    parser.add_argument(
        "--processing-window", type=float, default=10.0, help="seconds sampled after 202 (10)"
    )
    parser.add_argument("--upload-timeout", type=float, default=600, help="seconds (600)")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds (60)")
    parser.add_argument("--server-log", metavar="FILE", help="keep a copy of the server log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.size_mb <= 900:
        parser.error("--size-mb must be between 1 and 900 (the server limit is set to 1000)")
    srv.exit_cleanly_on_sigterm()
    result = run(args)
    print(json.dumps(result) if args.json else summary(result))


if __name__ == "__main__":
    main()
