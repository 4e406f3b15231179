"""Scale-out: 40 consultations on PostgreSQL with two workers, and against one SQLite process.

Two scenarios, each with a fake OpenAI-compatible speech-to-text server on 127.0.0.1 that
answers after ``--latency`` seconds (the extractive note writer needs no provider):

* ``throughput``: the same ``--count`` consultations (distinct clips) through one
  ``clinscribe serve`` on SQLite, then through ``serve --no-worker`` + 2 ``clinscribe worker``
  processes on PostgreSQL. Throughput = consultations / (first upload -> last completed).
* ``kill``: PostgreSQL, API + 2 workers, lease ``--lease`` s. When the second worker has a
  transcription in flight it is SIGKILLed for good. Reported: the split between the workers
  before the kill, the time until all are completed, and, from the fake provider's log, that
  no finished step ran twice (each clip is sent once, plus once more only when it was in
  flight at the kill).

Every process runs with worker concurrency ``--concurrency`` (default 2, the default setting).
PostgreSQL is Debian's server, started privately on 127.0.0.1 for the run.

    .venv/bin/python bench/scale_out.py [--count 40] [--latency 2] [--scenario both] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _server as srv

srv.fake_servers_importable()

from tests.fakes.openai_compat import FakeOpenAIServer  # noqa: E402
from tests.support.postgres import PostgresCluster, postgres_bin  # noqa: E402
from tests.support.scale_out import deployment, distinct_clips, in_flight_at  # noqa: E402


def _settings(args: argparse.Namespace) -> dict[str, str]:
    return {
        "CLINSCRIBE_WORKER_CONCURRENCY": str(args.concurrency),
        "CLINSCRIBE_WORKER_LEASE_S": str(args.lease),
    }


def throughput(
    args: argparse.Namespace, cluster: PostgresCluster | None, tmp: Path
) -> dict[str, Any]:
    clips = distinct_clips(args.count)
    timeout_s = args.count * args.latency * 2 + 120
    with (
        FakeOpenAIServer(latency_s=args.latency) as fake,
        deployment(
            tmp, fake, postgres=cluster, workers=2 if cluster else 0, env=_settings(args)
        ) as found,  # fmt: skip
    ):
        started = time.monotonic()
        ids = found.upload(clips)
        statuses = found.wait_all(ids, timeout_s=timeout_s)
        elapsed = time.monotonic() - started
        completed = sum(1 for s in statuses.values() if s == "completed")
        split = dict(found.workflows_by_executor(ids)) if cluster else {"local": len(ids)}
        requests = len(fake.transcription_requests())
    return {
        "setup": "postgres, api + 2 workers" if cluster else "sqlite, 1 process",
        "completed": completed,
        "count": len(ids),
        "seconds": round(elapsed, 1),
        "per_minute": round(completed / elapsed * 60, 1),
        "by_executor": split,
        "transcription_requests": requests,
    }


def kill_one(args: argparse.Namespace, cluster: PostgresCluster, tmp: Path) -> dict[str, Any]:
    clips = distinct_clips(args.count)
    with (
        FakeOpenAIServer(latency_s=args.latency) as fake,
        deployment(tmp, fake, postgres=cluster, workers=2, env=_settings(args)) as found,
    ):
        survivor, victim = found.workers
        victim_id, survivor_id = found.executor_of(victim), found.executor_of(survivor)
        started = time.monotonic()
        ids = found.upload(clips)
        # Let both work for a while, then kill the victim while it is transcribing.
        deadline = time.monotonic() + args.count * args.latency
        while time.monotonic() < deadline:
            done = sum(1 for s in found.statuses(ids).values() if s == "completed")
            if done >= args.count // 4 and found.transcribing_on(victim_id):
                break
            time.sleep(0.1)
        before = dict(found.workflows_by_executor(ids))
        completed_before = sum(1 for s in found.statuses(ids).values() if s == "completed")
        victim.kill()
        killed_at, finished_then = time.monotonic(), found.transcribed()
        statuses = found.wait_all(ids, timeout_s=args.lease + args.count * args.latency + 120)
        finished_at = time.monotonic()
        completed = sum(1 for s in statuses.values() if s == "completed")
        by_clip = found.transcriptions_by_clip()
        repeated = sum(len(r) - 1 for r in by_clip.values())
        # A finished (checkpointed) transcription sent again would be paid twice.
        finished_sent_again = set(found.sent_after(killed_at)) & finished_then
        in_flight = len(in_flight_at(fake.transcription_requests(), killed_at))
        took_over = "took over a stopped or silent worker's workflows" in survivor.log_text()
    return {
        "count": len(ids),
        "lease_s": args.lease,
        "victim": victim_id,
        "survivor": survivor_id,
        "executors_at_kill": before,
        "completed_at_kill": completed_before,
        "completed": completed,
        "seconds_after_kill": round(finished_at - killed_at, 1),
        "seconds_total": round(finished_at - started, 1),
        "requests_in_flight_at_kill": in_flight,
        "requests_repeated": repeated,
        "transcriptions_finished_at_kill": len(finished_then),
        "finished_transcriptions_sent_again": len(finished_sent_again),
        "survivor_logged_take_over": took_over,
        "final_executors": dict(found.workflows_by_executor(ids)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--latency", type=float, default=2.0, help="fake STT seconds/request")
    parser.add_argument("--concurrency", type=int, default=2, help="per worker process")
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--scenario", choices=["throughput", "kill", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    srv.exit_cleanly_on_sigterm()
    bin_dir = postgres_bin()
    if bin_dir is None:
        print("PostgreSQL server binaries are missing: apt-get install postgresql", file=sys.stderr)
        return 2
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    results: dict[str, Any] = {"count": args.count, "latency_s": args.latency}
    try:
        with tempfile.TemporaryDirectory(prefix="clinscribe-scale-") as tmp:
            if args.scenario in ("throughput", "both"):
                single = throughput(args, None, Path(tmp) / "sqlite")
                pair = throughput(args, cluster, Path(tmp) / "postgres")
                results["throughput"] = {
                    "sqlite_1_process": single,
                    "postgres_2_workers": pair,
                    "ratio": round(pair["per_minute"] / single["per_minute"], 2),
                }
            if args.scenario in ("kill", "both"):
                results["kill"] = kill_one(args, cluster, Path(tmp) / "kill")
    finally:
        cluster.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if "throughput" in results:
        t = results["throughput"]
        print(f"{args.count} consultations, fake STT {args.latency:g} s/request, "
              f"worker concurrency {args.concurrency}")  # fmt: skip
        for key in ("sqlite_1_process", "postgres_2_workers"):
            r = t[key]
            print(f"  {r['setup']:<28} {r['completed']}/{r['count']} completed in "
                  f"{r['seconds']:6.1f} s = {r['per_minute']:6.1f}/min  "
                  f"{r['by_executor']}")  # fmt: skip
        print(f"  ratio (postgres 2 workers / sqlite 1 process): {t['ratio']:.2f}")
    if "kill" in results:
        k = results["kill"]
        print(f"kill: {k['count']} consultations, worker {k['victim']} SIGKILLed for good "
              f"(lease {k['lease_s']:g} s); at the kill {k['completed_at_kill']} completed, "
              f"executors {k['executors_at_kill']}")  # fmt: skip
        print(f"  {k['completed']}/{k['count']} completed {k['seconds_after_kill']} s after "
              f"the kill ({k['seconds_total']} s in all); take-over logged: "
              f"{k['survivor_logged_take_over']}")  # fmt: skip
        print(f"  transcriptions finished (checkpointed) at the kill: "
              f"{k['transcriptions_finished_at_kill']}, sent again after it: "
              f"{k['finished_transcriptions_sent_again']}; requests in flight at the kill: "
              f"{k['requests_in_flight_at_kill']}; requests repeated (interrupted steps): "
              f"{k['requests_repeated']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
