"""Verification v1: does each note sentence say only what its cited utterances say?

Three checks, cheap enough to run on every note and again after every hand edit:

- citations: a sentence that cites nothing, or an id not in the transcript -> ``no_evidence``;
- numbers: every number in the sentence (digits such as 500, 38.2, 128/82, or number words
  such as "five hundred") must occur in the cited utterances -> else ``unsupported``;
- negation: a sentence that negates ("no", "not", "denies", "never", "without", "don't"...)
  must rest on evidence that negates too, and a sentence must not drop a negation its evidence
  puts on the same words ("No chest pain" -> "Chest pain") -> else ``unsupported``.

Flags are review prompts, not verdicts: a false alarm costs the clinician a glance, a missed
changed dose costs far more, so the checks lean towards flagging.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal

from clinscribe.notes.model import NoteDraft, NoteSentence, Utterance

# The flags this module owns: recomputed on every run, so fixing a sentence clears its flag.
# Other flags (e.g. a reviewer's ``needs_review``) are kept as they are.
VERIFIER_FLAGS: tuple[str, ...] = ("no_evidence", "unsupported")

NEGATIONS: frozenset[str] = frozenset(
    {"no", "not", "never", "without", "denies", "denied", "deny", "none", "nothing", "nor"}
    | {"neither", "cannot", "negative"}
)
# Words after a negation that it does not bear on: "no, not really any chest pain" negates
# "chest pain". A negation's scope ends at punctuation or after this many words.
NEGATION_SCOPE_WORDS = 4
# fmt: off
SCOPE_STOPWORDS: frozenset[str] = frozenset((
    "a", "an", "the", "any", "of", "to", "for", "in", "on", "at", "all", "i", "you", "he", "she",
    "it", "we", "they", "have", "has", "had", "do", "does", "did", "is", "was", "are", "were",
    "be", "been", "really", "much", "more", "some", "that", "this", "my", "your", "his", "her",
    "and", "or", "so", "uh", "um", "like", "very", "think", "know", "need", "want", "wan",
    "gon", "na", "going", "go", "get", "just", "seem", "sure",
))
_UNITS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS: tuple[str, ...] = (
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)
# fmt: on
NUMBER_WORDS: dict[str, int] = {
    **{word: value for value, word in enumerate(_UNITS)},
    **{word: 20 + 10 * i for i, word in enumerate(_TENS)},
}
_SCALES = {"hundred": 100, "thousand": 1000}

_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_CLAUSE_BREAK = re.compile(r"[,.;:?!()\u2014-]\s|[,.;:?!()\u2014]$|\bbut\b")


def verify_note(draft: NoteDraft, utterances: list[Utterance]) -> NoteDraft:
    """Set review flags on every sentence of ``draft`` (in place) and return it. Pure: no I/O."""
    transcript = {utterance.id: utterance.text for utterance in utterances}
    for section in draft.sections:
        for sentence in section.sentences:
            kept = {flag for flag in sentence.flags if flag not in VERIFIER_FLAGS}
            sentence.flags = sorted(kept | check_sentence(sentence, transcript))
    return draft


def check_sentence(sentence: NoteSentence, transcript: dict[str, str]) -> set[str]:
    """The verifier flags one sentence earns against a transcript given as {utterance id: text}."""
    flags: set[str] = set()
    # Any id that is not in the transcript breaks the citation, even beside valid ones.
    if not sentence.evidence or any(uid not in transcript for uid in sentence.evidence):
        flags.add("no_evidence")
    evidence = [transcript[uid] for uid in sentence.evidence if uid in transcript]
    if not evidence:  # nothing to compare against; "no_evidence" already says so
        return flags
    supported = set().union(*(numbers_in(text) for text in evidence))
    if not numbers_in(sentence.text, skip_lone_one=True) <= supported:
        flags.add("unsupported")
    if _negation_added(sentence.text, evidence) or _negation_dropped(sentence.text, evidence):
        flags.add("unsupported")
    return flags


def numbers_in(text: str, *, skip_lone_one: bool = False) -> set[Decimal]:
    """Every number in ``text``, from digits ("128/82" gives 128 and 82) and number words.

    "one" alone is usually a pronoun ("the left one"), so a note sentence may skip it.
    """
    text = _THOUSANDS_COMMA.sub("", text.lower())
    found = {Decimal(match) for match in _DIGITS.findall(text)}
    for run in _number_word_runs(text):
        if not (skip_lone_one and run == ["one"]):
            found |= _run_values(run)
    return found


def _words(text: str) -> list[str]:
    # ASR and tokenised corpora write "don't" with a curly quote or as "do n't": one shape.
    return _WORD.findall(text.lower().replace("\u2019", "'").replace(" n't", "n't"))


def _is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


def _number_word_runs(text: str) -> list[list[str]]:
    """Maximal runs of number words ("five hundred and fifty", "thirty eight point two").

    Punctuation and digits end a run: "I have two. Three days ago" holds 2 and 3, not 5.
    """
    runs: list[list[str]] = []
    current: list[str] = []
    for word in [*re.findall(r"[a-z]+|[^\sa-z]", text.replace("-", " ")), ""]:
        after_scale = bool(current) and current[-1] in _SCALES
        joiner = (word == "and" and after_scale) or (word == "point" and bool(current))
        if word in NUMBER_WORDS or word in _SCALES or joiner:
            current.append(word)
            continue
        while current and current[-1] in ("and", "point"):
            current.pop()
        if current:
            runs.append(current)
        current = []
    return runs


def _run_values(run: list[str]) -> set[Decimal]:
    """What a run of number words can mean.

    A run may hold several numbers ("seven seven days" once punctuation is lost, or a sentence
    re-joined across utterances), so it is cut where grammar cannot continue a number; spoken
    vitals ("one twenty eight over eighty two") also give the hundreds reading, 128.
    """
    whole, _, fraction = " ".join(run).partition(" point ")
    values = [_integer(segment) for segment in _segments(whole.split())]
    found = {Decimal(value) for value in values}
    for first, rest in itertools.pairwise(values):
        if 1 <= first <= 9 and 10 <= rest <= 99:
            found.add(Decimal(first * 100 + rest))
    digits = "".join(str(NUMBER_WORDS[w]) for w in fraction.split() if w in _UNITS[:10])
    if digits and values:  # "thirty eight point two" is 38.2, and no longer 38
        found.discard(Decimal(values[-1]))
        found.add(Decimal(f"{values[-1]}.{digits}"))
    return found


def _segments(words: list[str]) -> list[list[str]]:
    """Cut a run where a word cannot extend the number so far ("seven seven", "one twenty")."""
    segments: list[list[str]] = []
    for word in words:
        if word == "and":
            continue
        last = segments[-1][-1] if segments else ""
        digit = 1 <= NUMBER_WORDS.get(word, 0) <= 9
        scale_follows = word in _SCALES and bool(last)
        if scale_follows or (last in _TENS and digit) or (last in _SCALES and word != "zero"):
            segments[-1].append(word)
        else:
            segments.append([word])
    return segments


def _integer(words: list[str]) -> int:
    total, current = 0, 0
    for word in words:
        if word in _SCALES:
            current = max(current, 1) * _SCALES[word]
            if _SCALES[word] >= 1000:
                total, current = total + current, 0
        else:
            current += NUMBER_WORDS[word]
    return total + current


def _negation_added(sentence: str, evidence: list[str]) -> bool:
    """The sentence negates, but none of its evidence does."""
    if not any(_is_negation(word) for word in _words(sentence)):
        return False
    return not any(_is_negation(word) for text in evidence for word in _words(text))


def _negation_dropped(sentence: str, evidence: list[str]) -> bool:
    """The evidence negates some words; the sentence says them, in a row, and negates nothing."""
    words = _words(sentence)
    # A sentence with a negation of its own (a quoted "No.") is trusted here: pairing each
    # negation with its words needs a real parser (ConText, later), not this heuristic.
    if any(map(_is_negation, words)):
        return False
    content = " " + " ".join(w for w in words if w not in SCOPE_STOPWORDS) + " "
    return any(f" {' '.join(scope)} " in content for scope in _negated_scopes(evidence))


def _negated_scopes(evidence: list[str]) -> list[tuple[str, ...]]:
    """The content words each negation in the evidence bears on, clause by clause."""
    scopes: list[tuple[str, ...]] = []
    for text in evidence:
        for clause in _CLAUSE_BREAK.split(text.lower()):
            words = _words(clause)
            for i, word in enumerate(words):
                if not _is_negation(word):
                    continue
                following = words[i + 1 : i + 1 + NEGATION_SCOPE_WORDS]
                content = [w for w in following if w not in SCOPE_STOPWORDS]
                # A second negation ends the scope: "not really, no" has nothing to carry.
                content = list(itertools.takewhile(lambda w: not _is_negation(w), content))
                if content:
                    scopes.append(tuple(content))
    return scopes
