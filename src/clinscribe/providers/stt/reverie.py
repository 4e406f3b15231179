"""Speech-to-text through Reverie's Indian-language APIs (design/providers.md, Reverie).

Clips up to 300 s go to `stt_file`: one request, one answer without timestamps. Longer clips go to
`stt_batch`: upload, poll the job, fetch word timestamps, which we group into segments. Reverie
documents few HTTP statuses (?), so the body's own verdict (`success`, `code`) is checked as well.
"""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import httpx

from clinscribe.config import RetrySettings, ReverieSettings
from clinscribe.errors import (
    ConfigurationError,
    InvalidAudio,
    ProviderPermanentError,
    ProviderTransientError,
    UnsupportedLanguage,
)
from clinscribe.providers.http import error_for_exception, error_for_response, with_retries
from clinscribe.providers.stt.base import Segment, SttCapabilities, TranscriptionResult

_NAME = "reverie"
FILE_LIMIT_S = 300.0  # stt_file refuses longer audio
REVERIE_LANGUAGES = frozenset("en hi ta te kn ml mr bn gu pa or as".split())  # noqa: SIM905
# Module-level so the registry can read them without opening a client.
REVERIE_CAPABILITIES = SttCapabilities(
    REVERIE_LANGUAGES, FILE_LIMIT_S, max_bytes_per_request=None, diarization=False, needs_key=True
)

_PAUSE_S, _MAX_WORDS = 0.8, 25  # a silence this long, or this many words, ends a segment
_SENTENCE_END = (".", "?", "!", "\u0964", "\u0965")  # danda, double danda end Indic sentences
_CLOSERS = "\"')\u201d\u2019"  # closing quotes and brackets after a full stop
_PUNCTUATED = frozenset({"en", "hi"})  # the only languages Reverie punctuates
# A 403 is bad credentials, an exhausted plan ("usage exhausted") or a language the account may
# not use; only the wording tells them apart. Nothing else reads, and nothing quotes, vendor text.
_QUOTA = re.compile(r"usage|exhaust|quota|limit|credit", re.IGNORECASE)
_JOB_NOT_FOUND = frozenset({"001", "002"})
_MESSAGES = {
    "provider_rejected": "Reverie refused the request{detail}. Check the language and "
    "CLINSCRIBE_REVERIE__DOMAIN, then retry the consultation.",
    "provider_auth_failed": "Reverie rejected our credentials (HTTP 403). Check "
    "CLINSCRIBE_REVERIE__API_KEY and CLINSCRIBE_REVERIE__APP_ID, then retry the consultation.",
    "provider_quota_exhausted": "The Reverie account has used up its plan (HTTP 403, usage "
    "exhausted). Top up the account or switch provider, then retry the consultation.",
    "provider_language_not_allowed": "The Reverie account may not use this language (HTTP 403). "
    "Ask Reverie to enable it, or choose another language or provider.",
    "provider_job_failed": "Reverie reported the transcription job as failed. Retry the "
    "consultation; if it fails again, contact Reverie support or use another provider.",
    "provider_job_not_found": "Reverie lost the transcription job; retry the consultation.",
    "provider_bad_response": "Reverie answered with an unexpected body.",
}

Word = tuple[float, float, str]  # (start s, end s, text)
T = TypeVar("T")


class _FileAnswer(TypedDict, total=False):  # also: id, final, confidence
    success: bool
    text: str
    display_text: str
    cause: str


class _JobAnswer(TypedDict, total=False):
    job_id: str
    code: str  # 000 done, 003 queued, 004 processing, 005 failed, 001/002 unknown job
    message: str
    status: str  # queued | processing | failed | completed
    result: Any  # {transcript, original_transcript, channel_number, words, subtitles}, or a list


def reverie_language(language: str) -> str:
    """Our ISO 639-1 code as Reverie's `src_lang`; code-mixed pairs like `hi_en` pass through."""
    code = language.strip().lower().replace("-", "_")
    parts = code.split("_")
    if code in REVERIE_LANGUAGES or (len(parts) == 2 and set(parts) <= REVERIE_LANGUAGES):
        return code
    message = f"Reverie does not support language '{language[:16]}'; use one of: "
    raise UnsupportedLanguage(message + ", ".join(sorted(REVERIE_LANGUAGES)) + ".")


class ReverieSpeechToText:
    name = _NAME
    capabilities = REVERIE_CAPABILITIES

    def __init__(
        self,
        settings: ReverieSettings,
        retry: RetrySettings,
        *,
        poll_interval_s: float = 2.0,
        max_poll_s: float = 3600.0,
        timeout_s: float = 120.0,
    ) -> None:
        api_key = settings.api_key.get_secret_value() if settings.api_key else ""
        names = ("CLINSCRIBE_REVERIE__API_KEY", "CLINSCRIBE_REVERIE__APP_ID")
        if missing := [n for n, v in zip(names, (api_key, settings.app_id), strict=True) if not v]:
            raise ConfigurationError(
                f"The Reverie speech-to-text provider needs credentials: set "
                f"{' and '.join(missing)} (or choose CLINSCRIBE_STT_PROVIDER=local).",
                code="missing_api_key",
            )
        self.model = f"reverie-{settings.domain}"
        self._domain = settings.domain
        self._retry = retry
        self._poll_interval_s, self._max_poll_s = poll_interval_s, max_poll_s
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers={"REV-API-KEY": api_key, "REV-APP-ID": settings.app_id or ""},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    async def transcribe(self, audio: Path, *, language: str) -> TranscriptionResult:
        src_lang = reverie_language(language)
        duration = _wav_duration(audio)
        if duration <= FILE_LIMIT_S:
            answer = await self._retrying(lambda: self._stt_file(audio, src_lang))
            text = str(answer.get("display_text") or answer.get("text") or "").strip()
            # stt_file gives no timestamps: the clip is one utterance.
            segments = [Segment(start=0.0, end=duration, text=text)] if text else []
        else:
            segments = await self._stt_batch(audio, src_lang, duration)
        return TranscriptionResult(language, round(duration, 3), segments, self.name, self.model)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(call, policy=self._retry, provider=self.name)

    async def _stt_file(self, audio: Path, src_lang: str) -> _FileAnswer:
        body = await self._send("", "stt_file", src_lang, audio=audio)
        if body.get("success") is not True:
            raise _permanent("provider_rejected", detail=" (success=false)")
        return body  # type: ignore[return-value]

    async def _stt_batch(self, audio: Path, src_lang: str, duration: float) -> list[Segment]:
        job_id = await self._retrying(lambda: self._upload(audio, src_lang))
        deadline = time.monotonic() + self._max_poll_s
        while not (await self._retrying(lambda: self._job("status", job_id)))[0]:
            if time.monotonic() + self._poll_interval_s > deadline:
                what = f"Reverie did not finish the job within {self._max_poll_s:g} s."
                raise _transient(what, "provider_job_timeout")
            await asyncio.sleep(self._poll_interval_s)
        _, answer = await self._retrying(lambda: self._job("transcript", job_id, until_done=True))
        if not isinstance(answer.get("result"), dict | list):  # "ready", yet nothing to read
            raise _permanent("provider_bad_response")
        return _job_segments(answer.get("result"), duration)

    async def _upload(self, audio: Path, src_lang: str) -> str:
        body = await self._send("upload", "stt_batch", src_lang, audio=audio)
        code, job_id = str(body.get("code", "")), body.get("job_id")
        if code == "999":  # "unknown error": nothing says the input was at fault (?)
            raise _transient("Reverie reported an unknown error (code 999).")
        if code != "000" or not isinstance(job_id, str) or not job_id:
            raise _permanent("provider_rejected", detail=f" (upload code {code[:8] or 'missing'})")
        return job_id

    async def _job(self, path: str, job_id: str, until_done: bool = False) -> tuple[bool, Any]:
        """GET status or transcript: whether the job is done, failing on a failed or lost job."""
        answer: _JobAnswer = await self._send(path, "stt_batch", job=job_id)  # type: ignore[assignment]
        code, status = str(answer.get("code", "")), str(answer.get("status", "")).lower()
        if status == "failed" or code == "005":
            raise _permanent("provider_job_failed")
        if code in _JOB_NOT_FOUND:
            raise _permanent("provider_job_not_found")
        if code == "999":
            raise _transient("Reverie reported an unknown error (code 999).")
        # 000 is "Transcript ready" (reverie-sdk trusts the code alone); anything else (queued,
        # processing, codes 003/004, a status we do not know) is still pending.
        done = code == "000" or status == "completed"
        if until_done and not done:  # "queued" again after "completed": ask again
            raise _transient("The Reverie transcript is not ready.", "provider_job_pending")
        return done, answer

    async def _send(
        self, path: str, app: str, src_lang: str = "", audio: Path | None = None, job: str = ""
    ) -> dict[str, Any]:
        """GET with a job id, or POST the audio; the JSON object answered, or our error."""
        headers = {"REV-APPNAME": app}
        if src_lang:  # options travel with the request that carries the audio
            headers |= {"src_lang": src_lang, "domain": self._domain, "format": "16k_int16"}
            # Reverie keeps neither audio nor transcript (default: both). Batch docs omit it (?).
            headers["logging"] = "false"
            if src_lang in _PUNCTUATED:
                headers["punctuate"] = "true"
        try:
            if audio is None:
                params = {"job_id": job}
                response = await self._client.get(path, headers=headers, params=params)
            else:
                with audio.open("rb") as handle:
                    field = "audio_file" if app == "stt_file" else "file"
                    files = {field: (audio.name, handle, "audio/wav")}
                    response = await self._client.post(path, headers=headers, files=files)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code == 403:
            raise _forbidden(body if isinstance(body, dict) else {})
        if response.status_code >= 400:  # 429/5xx transient, other 4xx permanent
            raise error_for_response(self.name, response)
        if not isinstance(body, dict):
            raise _permanent("provider_bad_response", response.status_code)
        return body


def _forbidden(body: dict[str, Any]) -> ProviderPermanentError:
    reason = f"{body.get('cause', '')} {body.get('message', '')}"
    if _QUOTA.search(reason):
        return _permanent("provider_quota_exhausted", 403)
    if "language" in reason.lower():  # "unauthorized to use this src/tgt language"
        return _permanent("provider_language_not_allowed", 403)
    return _permanent("provider_auth_failed", 403)


def _permanent(code: str, status: int | None = None, detail: str = "") -> ProviderPermanentError:
    message = _MESSAGES[code].format(detail=detail)
    return ProviderPermanentError(message, provider=_NAME, code=code, http_status=status)


def _transient(what: str, code: str = "provider_unavailable") -> ProviderTransientError:
    return ProviderTransientError(f"{what} It will be retried.", provider=_NAME, code=code)


def _wav_duration(audio: Path) -> float:
    try:
        with wave.open(str(audio), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            frames = wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise InvalidAudio("The recording is not a readable WAV file.") from exc
    if shape != (16_000, 1, 2):
        raise InvalidAudio("Reverie needs 16 kHz mono 16-bit WAV; the recording was not converted.")
    return frames / 16_000


def _job_segments(result: Any, duration: float) -> list[Segment]:
    """Segments from a batch result: one object per channel, or a list of them (?)."""
    segments: list[Segment] = []
    for channel in result if isinstance(result, list) else [result]:
        if not isinstance(channel, dict):
            continue
        transcript = str(channel.get("transcript") or "").strip()
        if words := _words(channel.get("words")):
            segments += _group(_with_display_text(words, transcript))
        elif transcript:  # no word timings: keep the text as one utterance
            segments.append(Segment(start=0.0, end=duration, text=transcript))
    return sorted(segments, key=lambda segment: segment.start)


def _words(groups: Any) -> list[Word]:
    """Flatten `words` (a list of lists of {conf, start, end, word}), skipping malformed items."""
    groups = groups if isinstance(groups, list) else []
    items = [item for group in groups if isinstance(group, list) for item in group]
    words: list[Word] = []
    for item in items:
        try:
            words.append((float(item["start"]), float(item["end"]), str(item["word"]).strip()))
        except (KeyError, TypeError, ValueError):
            continue
    return [word for word in words if word[2]]


def _with_display_text(words: list[Word], transcript: str) -> list[Word]:
    """Word timings carry raw upper-case words; borrow the cased, punctuated transcript's
    tokens when they line up one to one, which also lets segments end at sentence ends."""
    tokens = transcript.split()
    if len(tokens) != len(words):
        return words
    return [(start, end, token) for (start, end, _), token in zip(words, tokens, strict=True)]


def _group(words: list[Word]) -> list[Segment]:
    """One segment per pause, sentence end or _MAX_WORDS words, whichever comes first."""
    groups: list[list[Word]] = []
    for word in sorted(words, key=lambda w: w[0]):
        last = groups[-1] if groups else []
        if (
            not last
            or word[0] - last[-1][1] >= _PAUSE_S
            or len(last) >= _MAX_WORDS
            or last[-1][2].rstrip(_CLOSERS).endswith(_SENTENCE_END)
        ):
            groups.append([])
        groups[-1].append(word)
    return [Segment(start=g[0][0], end=g[-1][1], text=" ".join(w[2] for w in g)) for g in groups]
