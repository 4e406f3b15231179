"""Provider ids -> factories, with the capabilities each declares.

The pipeline and the upload validation ask the registry; nothing else constructs providers.
"""

from __future__ import annotations

from clinscribe.config import Settings
from clinscribe.errors import ConfigurationError, UnsupportedLanguage
from clinscribe.notes.model import NoteWriter
from clinscribe.providers.stt.base import SpeechToText, SttCapabilities

# ISO 639-1 codes clinscribe accepts at all; each provider narrows this down.
KNOWN_LANGUAGES = frozenset(
    {"en", "hi", "ta", "te", "kn", "ml", "mr", "bn", "gu", "pa", "or", "as", "ur"}
)


def build_speech_to_text(settings: Settings) -> SpeechToText:
    name = settings.stt_provider
    if name == "local":
        from clinscribe.providers.stt.local_whisper import LocalWhisperSpeechToText

        return LocalWhisperSpeechToText(settings.local_stt, settings.model_cache_dir)
    if name == "openai":
        from clinscribe.providers.stt.openai_compat import OpenAICompatibleSpeechToText

        return OpenAICompatibleSpeechToText(settings.openai_stt, settings.retry)
    if name == "sarvam":
        from clinscribe.providers.stt.sarvam import SarvamSpeechToText

        s = settings.sarvam
        return SarvamSpeechToText(
            s, settings.retry, poll_interval_s=s.poll_interval_s, max_poll_s=s.max_poll_s,
            diarization=s.diarization, num_speakers=s.num_speakers, timeout_s=s.timeout_s,
        )  # fmt: skip
    if name == "reverie":
        from clinscribe.providers.stt.reverie import ReverieSpeechToText

        r = settings.reverie
        return ReverieSpeechToText(
            r, settings.retry, poll_interval_s=r.poll_interval_s, max_poll_s=r.max_poll_s,
            timeout_s=r.timeout_s,
        )  # fmt: skip
    raise ConfigurationError(f"Unknown CLINSCRIBE_STT_PROVIDER '{name}'.")


def stt_capabilities(settings: Settings) -> SttCapabilities:
    """Capabilities of the configured provider, without opening connections or loading models."""
    if settings.stt_provider == "local":
        from clinscribe.providers.stt.local_whisper import local_capabilities

        return local_capabilities(settings.local_stt)
    if settings.stt_provider == "openai":
        from clinscribe.providers.stt.openai_compat import openai_capabilities

        return openai_capabilities(settings.openai_stt)
    if settings.stt_provider == "reverie":
        from clinscribe.providers.stt.reverie import REVERIE_CAPABILITIES

        return REVERIE_CAPABILITIES
    if settings.stt_provider == "sarvam":
        from clinscribe.providers.stt.sarvam import SarvamSpeechToText

        return SarvamSpeechToText.capabilities
    raise ConfigurationError(f"Unknown CLINSCRIBE_STT_PROVIDER '{settings.stt_provider}'.")


def check_language(settings: Settings, language: str) -> str:
    """Validate an upload's language for the configured provider; returns the normalised code."""
    code = language.strip().lower()
    supported = stt_capabilities(settings).languages or KNOWN_LANGUAGES
    if code not in supported or code not in KNOWN_LANGUAGES:
        names = ", ".join(sorted(supported & KNOWN_LANGUAGES))
        raise UnsupportedLanguage(
            f"Language '{language[:16]}' is not supported by the configured speech-to-text "
            f"provider ({settings.stt_provider}). Use an ISO 639-1 code, one of: {names}."
        )
    return code


def build_note_writer(settings: Settings) -> NoteWriter:
    if settings.note_provider == "extractive":
        from clinscribe.notes.extractive import ExtractiveNoteWriter

        return ExtractiveNoteWriter()
    if settings.note_provider == "llm":
        from clinscribe.notes.llm_writer import LlmNoteWriter

        # Checks the key and the token budget now: a worker refuses to start rather than
        # transcribe (and pay for) consultations whose note cannot be written.
        return LlmNoteWriter(settings.llm, settings.retry)
    raise ConfigurationError(f"Unknown CLINSCRIBE_NOTE_PROVIDER '{settings.note_provider}'.")
