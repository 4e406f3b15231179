"""Speech into sentences: splitting, re-joining Whisper's cuts, and tidying spoken filler.

Everything here removes or re-spaces; nothing adds a word. ``clean_spoken`` takes out what a
written note never keeps (um, uh, "you know", stutters such as "i, i, i", cut-off words such as
"sh-") and leaves negations and hedges ("not", "maybe", "might") alone: they carry meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from clinscribe.notes.model import Speaker, Utterance
from clinscribe.notes.negation import bears_on_what_follows

# A full stop after these words is part of the word, not the end of a sentence ("Dr. Moore").
ABBREVIATIONS: tuple[str, ...] = ("dr", "mr", "mrs", "ms", "st", "vs", "approx", "e.g", "i.e")
# Whisper cuts sentences across segments: a piece without final punctuation joins the next
# utterance's first piece if this close in time, over at most this many (unpunctuated speech).
MAX_JOIN_GAP_SECONDS = 1.0
MAX_JOINED_UTTERANCES = 3

# Spoken filler removed from the start of a sentence; it never carries clinical meaning there.
LEADING_FILLER: tuple[str, ...] = (
    "um+", "uh+", "erm", "hmm+", "mm-?hmm", "oh", "so", "okay", "ok", "alright", "all right",
    "and", "well", "now", "but", "also", "yeah", "then", "like", "you know", "i mean",
    "great", "good", "perfect", "right", "sure", "'cause", "cause",
)  # fmt: skip

# Filler removed anywhere in a sentence. "like" only where it fills ("it was like, sore",
# "for like six months"); "it feels like a knife" keeps it. "just" keeps its "recently" sense
# after have/had ("I've just started"). Nothing is removed right after a negation: "not just
# these episodes" is not "not these episodes". A hedge ("I don't know") is never filler.
_FILLER_ANYWHERE = re.compile(
    r"(?<![\w'-])(?<!\bnot )(?<!n't )(?<!\bno )(?<!never )"
    r"(?:um+|uh+|erm|hmm+|you know|i mean|basically|actually|literally|honestly"
    r"|obviously|(?<!have )(?<!had )(?<!has )(?<!'ve )just|,\s*like(?=\s*,))(?![\w'-])\s*,?",
    re.I,
)
_FILLER_LIKE = re.compile(
    r"\b(was|were|is|it's|that's|about|for|around|maybe|and|be|um|uh)\s+like\b"
    r"(?! to\b| that\b| this\b| it\b| a\b| an\b| the\b)\s*,?",
    re.I,
)
# A tag that asks for agreement adds nothing: "I'll refer you to a cardiologist, okay?" informs
# rather than asks, so it ends with a full stop; "..., right?" still asks to confirm.
_INFORMING_TAG = re.compile(
    r"[\s,]*\b(?:okay|ok|all right|alright|you know|does that sound good|sound good|does that"
    r" make sense|is that okay|okay with you|fair enough)\s*[.?!]*\s*$",
    re.I,
)
_CONFIRMING_TAG = re.compile(r"[\s,]*\b(?:right|correct|yeah|yes)\s*\?\s*$", re.I)
# A cut-off word ("sh- shows", "y- you", "or-") is an attempt the speaker abandoned.
_CUT_OFF = re.compile(r"(?<![\w-])[a-z]{1,6}-(?=\s|$|[,.])", re.I)
# "i, i, i think", "your, your diet", "that ... that": the same word said again. Number words
# and digits repeat on purpose ("twenty twenty", "one one zero").
_NUMBERISH = (
    r"\d|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty"
    r"|forty|fifty|sixty|seventy|eighty|ninety|hundred|very|bye|no"
)
_STUTTER = re.compile(
    rf"\b(?!(?:{_NUMBERISH})\b)([a-z]+(?:'[a-z]+)?)\b(?:(?:\s*[,.]{{1,3}}\s*|\s+)\1\b)+", re.I
)


@dataclass(frozen=True)
class Piece:
    """A sentence, or a fragment of one, the utterances it came from and who said it."""

    text: str
    ids: tuple[str, ...]
    speaker: Speaker = "unknown"


def pieces(utterances: Iterable[Utterance]) -> list[Piece]:
    """Sentences of all utterances in order, a sentence cut across utterances re-joined, a
    question run on after an answer ("Yes, since last night, any cough?") split off, and long
    unpunctuated speech cut where a new thought starts."""
    found = _split_trailing_questions(_joined_pieces(utterances))
    return [part for piece in found for part in _split_run_on(piece)]


# Unpunctuated speech ("...they look great alright so let's do the exam okay so your knee...")
# runs on for a hundred words. Past this length it is cut before words that open a new
# thought; no word is dropped or changed.
RUN_ON_WORDS = 30
_NEW_THOUGHT = re.compile(
    r"\s+(?=(?:alright|all right|okay|ok|so|now|um|uh|and then|anyway|well|but)\s)"
    r"|(?<!how)(?<!what)(?<!when)(?<!where)(?<!why)\s+"
    r"(?=(?:do|does|did|have|has|are|is|was|were|can|could|would|will) (?:you|it|there"
    r"|your|that|the pain)\b)"
    r"|\s+(?=(?:how|what|when|where|why|which) )",
    re.I,
)


# A cut after these words falls inside a clause: "the duct in | which urine passes", "we'll |
# have you come back" (an order, not the question "have you come back?").
_NEEDS_MORE = re.compile(
    r"\b(?:of|in|on|at|for|to|about|from|with|by|into|the|a|an|your|my|his|her|their|our"
    r"|will|would|could|can|should|might|may|must|'ll|'d|i|we|you|they|he|she|let|na)\s*$",
    re.I,
)


def _split_run_on(piece: Piece) -> list[Piece]:
    """Cuts only where a clause can end: never after a word that needs more, and never inside
    the scope of a negation or hedge ("there's no evidence of | what we call hydronephrosis"
    cut there would state the hydronephrosis)."""
    if len(piece.text.split()) <= RUN_ON_WORDS or re.search(r"[,;]", piece.text):
        return [piece]
    parts: list[str] = []
    for part in (part.strip() for part in _NEW_THOUGHT.split(piece.text)):
        if not part:
            continue
        if parts and (_NEEDS_MORE.search(parts[-1]) or bears_on_what_follows(parts[-1])):
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return [Piece(part, piece.ids, piece.speaker) for part in parts]


def _joined_pieces(utterances: Iterable[Utterance]) -> Iterator[Piece]:
    carry: Piece | None = None  # an unterminated last piece waiting for its continuation
    previous_end = 0.0
    for utterance in utterances:
        parts = split_sentences(utterance.text)
        if not parts:
            continue
        found = [Piece(part, (utterance.id,), utterance.speaker) for part in parts]
        if carry is not None:
            if utterance.start - previous_end <= MAX_JOIN_GAP_SECONDS and _same_voice(
                carry.speaker, utterance.speaker
            ):
                head = found[0]
                found[0] = Piece(
                    f"{carry.text} {head.text}", merge_ids(carry.ids, head.ids), carry.speaker
                )
            else:
                yield carry
            carry = None
        last = found[-1]
        joinable = len(last.ids) < MAX_JOINED_UTTERANCES and tidy_sentence(last.text) != ""
        if joinable and not _TERMINATED.search(last.text):  # "uh," alone is not worth citing
            carry = found.pop()
        yield from found
        previous_end = utterance.end
    if carry is not None:
        yield carry


def _same_voice(first: Speaker, second: Speaker) -> bool:
    # Two known, different speakers never share a sentence; unknown joins anything.
    return first == second or "unknown" in (first, second)


# Whisper often runs an answer and the next question together with commas: "Yes, since last
# night, do you get short of breath?". The trailing clause that opens like a question is split
# off (only the comma becomes a stop; no word changes), so the answer is not lost as a question.
_TRAILING_QUESTION = re.compile(
    r"^(?P<statement>(?:yes|yeah|yep|no|nope|not really|mm-hmm|uh-huh|sometimes|okay)\b.*?),\s+"
    r"(?P<question>(?:do|does|did|are|is|was|were|have|has|had|any"
    r"|what|how|when|where|which|who|why|can|could|would|will|should)\b[^,]*\?)$",
    re.I,
)


def _split_trailing_questions(found: Iterable[Piece]) -> Iterator[Piece]:
    for piece in found:
        match = _TRAILING_QUESTION.match(piece.text.strip())
        if match is None:
            yield piece
            continue
        yield Piece(match.group("statement") + ".", piece.ids, piece.speaker)
        yield Piece(match.group("question"), piece.ids, piece.speaker)


# A semicolon joins two statements that stand alone ("It's a chest infection; start
# amoxicillin"): split there too, so the diagnosis is not lost inside a plan line.
_BOUNDARY = re.compile(r"[.?!]+[\"')\]]*(?=\s|$)|;(?=\s)")
_TERMINATED = re.compile(r"[.?!][\"')\]]*$")


def split_sentences(text: str) -> list[str]:
    """Split on . ? ! followed by a space or the end, and on "; "; decimals (38.2) and "Dr."
    stay whole."""
    found: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        words = text[start : match.start()].split()
        abbreviation = match.group() == "." and words and words[-1].lower() in ABBREVIATIONS
        if abbreviation or match.group().startswith(".."):  # "..." is trailing off, not a stop
            continue
        end = match.start() if match.group() == ";" else match.end()
        piece = text[start:end].strip()
        if piece:
            found.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        found.append(tail)
    return found


_LEADING_FILLER = re.compile(rf"^(?:(?:{'|'.join(LEADING_FILLER)})\b[\s,.\-]*)+", re.I)


def tidy_sentence(text: str) -> str:
    """Whitespace tidied, leading filler dropped, first letter capitalised, final period added.

    Returns "" when nothing with a letter or digit is left. Words are never changed or added.
    """
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.?!;:%])", r"\1", text)  # "pain , since" (tokenised) -> "pain, since"
    text = _LEADING_FILLER.sub("", text)
    text = text.lstrip(" ,.;:-").rstrip(" ,;:-")
    if not re.search(r"\w", text):
        return ""
    if not _TERMINATED.search(text):
        text += "."
    return text[0].upper() + text[1:]


def clean_spoken(text: str) -> str:
    """Spoken filler, agreement tags, cut-off words and stutters removed; words never added."""
    text = " ".join(text.replace("\u2026", " ").split())
    text = re.sub(r"\s*\.\.\.+\s*", " ", text)  # "that ... that": trailing off, not a stop
    if _INFORMING_TAG.search(text) and _INFORMING_TAG.sub("", text).strip(" ,"):
        text = _INFORMING_TAG.sub(".", text)
    text = _CONFIRMING_TAG.sub("?", text)
    text = _FILLER_ANYWHERE.sub(" ", text)
    text = _FILLER_LIKE.sub(r"\1 ", text)
    text = _CUT_OFF.sub(" ", text)
    text = _STUTTER.sub(r"\1", text)
    text = re.sub(r"(?:\s*,){2,}", ",", text)  # "so , , we" after removals
    return tidy_sentence(text)


def plain_words(text: str) -> str:
    """Lowercased words, single spaces, punctuation gone ("Any fever?" -> "any fever")."""
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())


def merge_ids(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    """Ids of both, each once, in first-seen order."""
    return tuple(dict.fromkeys([*first, *second]))
