"""Verification v2: does each note sentence say only what its cited utterances say?

Cheap enough to run on every note, whoever wrote it, and again after every hand edit:

- citations: a sentence that cites nothing, or an id not in the transcript -> ``no_evidence``;
- otherwise the sentence is compared with its evidence (the cited utterances, joined in the
  order cited, since a writer may re-join a sentence cut across utterances). Each problem below
  -> ``unsupported``:

  ``quote``        text in double quotes is not word for word in the evidence (the extractive
                   writer's ``Asked "..." — answered "..."`` is checked this way; the rest of
                   the checks look at the sentence outside its quotes);
  ``number``       a number (digits or words, decimals, ratios, "twice") the evidence lacks;
  ``unit``         a unit the evidence does not use ("mg" = "milligrams"), or a number paired
                   with another unit than the evidence pairs it with; a vital sign's usual unit
                   is implied ("temperature 38.2" supports "38.2 degrees");
  ``dose``         a drug given a dose the evidence gives it no dose of ("lisinopril 20 mg"
                   when the evidence says lisinopril 40 mg and furosemide 20 mg);
  ``drug``         a drug the evidence does not name (brand and generic names are one drug);
  ``finding``      a symptom, diagnosis or body part the evidence does not mention, or a side
                   (left/right) it does not say;
  ``negation``     a term said present where the evidence only negates it, or negated where the
                   evidence only affirms it (or negates nothing at all);
  ``uncertainty``  the same for hedging: "pneumonia" from "possible pneumonia", and back.

Flags are review prompts, not verdicts: a false alarm costs the clinician a glance, a missed
changed dose costs far more. Yet a verifier that flags everything is ignored, so each check is
built to stay silent on a faithful rewording (see ``assertion.py`` for the negation scopes).
Libraries: ``drug-named-entity-recognition`` (drug names) and ``negspacy`` (NegEx); both load
once per process, on first use (~1.5 s), and never touch the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from clinscribe.notes.assertion import Assertions, assertions
from clinscribe.notes.clinical_findings import ANATOMY, LATERALITY, findings_in, supported
from clinscribe.notes.clinical_terms import (
    content_stems,
    drugs_in,
    implied_units,
    word_offsets,
    words,
)
from clinscribe.notes.model import NoteDraft, NoteSentence, Utterance
from clinscribe.notes.omissions import find_omissions
from clinscribe.notes.quantities import doses, numbers_in, quantities

__all__ = ["VERIFIER_FLAGS", "check_sentence", "numbers_in", "sentence_problems", "verify_note"]

# The flags this module owns: recomputed on every run, so fixing a sentence clears its flag.
# Other flags (e.g. a reviewer's ``needs_review``) are kept as they are.
VERIFIER_FLAGS: tuple[str, ...] = ("no_evidence", "unsupported")

# The extractive writer's question/answer line; its quotes may hold quote marks themselves.
_QA = re.compile(r'Asked "(?P<question>.*)" \u2014 answered "(?P<answer>.*)"', re.DOTALL)
# Words a writer may drop from speech it quotes; they never carry a clinical fact.
# fmt: off
FILLER_WORDS: frozenset[str] = frozenset((
    "um", "umm", "uh", "uhh", "erm", "hmm", "mm-hmm", "oh", "so", "okay", "ok", "alright", "and",
    "well", "now", "but", "also", "yeah", "then", "like", "just", "basically", "actually",
    "literally", "honestly", "obviously", "great", "good", "perfect", "right", "sure", "cause",
    "'cause",
))
# fmt: on
_FILLER_PHRASES = re.compile(r"\b(?:you know|i mean|all right)\b")
_CUT_OFF = re.compile(r"(?<![\w-])[a-z]{1,6}-(?=\s|$|[,.])")
_QUOTE = re.compile(r"[\"\u201c]([^\"\u201c\u201d]+)[\"\u201d]")
# "left knee", "right side", "right lower extremity": a side named for a body part.
_SIDED = re.compile(
    r"\b(left|right)\s+(?:\w+\s+)?(?:side|sided|"
    + "|".join(sorted({w for p in ANATOMY.values() for w in p if " " not in w}, key=len)[::-1])
    + r")s?\b"
)


def verify_note(draft: NoteDraft, utterances: list[Utterance]) -> NoteDraft:
    """Set review flags on every sentence and the note's omissions (in place); pure, no I/O."""
    transcript = {utterance.id: utterance.text for utterance in utterances}
    cache: dict[str, Evidence] = {}  # one analysis per evidence, for this call only (PHI)
    for section in draft.sections:
        for sentence in section.sentences:
            kept = {flag for flag in sentence.flags if flag not in VERIFIER_FLAGS}
            sentence.flags = sorted(kept | check_sentence(sentence, transcript, cache))
    draft.omissions = find_omissions(draft, utterances)
    return draft


def check_sentence(
    sentence: NoteSentence,
    transcript: dict[str, str],
    cache: dict[str, Evidence] | None = None,
) -> set[str]:
    """The verifier flags one sentence earns against a transcript given as {utterance id: text}."""
    flags: set[str] = set()
    # Any id that is not in the transcript breaks the citation, even beside valid ones.
    if not sentence.evidence or any(uid not in transcript for uid in sentence.evidence):
        flags.add("no_evidence")
    texts = [transcript[uid] for uid in sentence.evidence if uid in transcript]
    if not texts:  # nothing to compare against; "no_evidence" already says so
        return flags
    key = "\u0000".join(texts)
    evidence = cache.get(key) if cache is not None else None
    if evidence is None:
        evidence = Evidence(tuple(texts))
        if cache is not None:
            cache[key] = evidence
    if sentence_problems(sentence.text, evidence):
        flags.add("unsupported")
    return flags


@dataclass(frozen=True)
class Evidence:
    """The cited utterances and what they state, computed lazily and once."""

    texts: tuple[str, ...]

    @cached_property
    def joined(self) -> str:
        return " ".join(self.texts)

    @cached_property
    def plain_words(self) -> str:
        return f" {' '.join(words(self.joined))} "

    @cached_property
    def spoken_core(self) -> str:
        return f" {_spoken_core(self.joined)} "

    @cached_property
    def offsets(self) -> list[tuple[str, list[int]]]:
        """Each utterance as ``words`` reads it, with where each of its words starts."""
        return [word_offsets(text) for text in self.texts]

    @cached_property
    def utterance_starts(self) -> list[int]:
        """Index, in ``plain_words``, of each utterance's first word."""
        counts = [len(starts) for _, starts in self.offsets]
        return [sum(counts[:i]) for i in range(len(counts))]

    @cached_property
    def numbers(self) -> set[Decimal]:
        return numbers_in(self.joined).union(*(numbers_in(text) for text in self.texts))

    @cached_property
    def quantities(self) -> set[tuple[Decimal, str]]:
        return quantities(self.joined)

    @cached_property
    def units(self) -> set[str]:
        return {unit for _, unit in self.quantities} | implied_units(self.joined)

    @cached_property
    def doses(self) -> dict[str, set[Decimal]]:
        return doses(self.joined)

    @cached_property
    def drugs(self) -> set[str]:
        return drugs_in(self.joined)

    @cached_property
    def stems(self) -> set[str]:
        return set(content_stems(self.joined))

    def assertions(self, terms: frozenset[str]) -> Assertions:
        """How the evidence asserts ``terms`` (the terms of one note sentence)."""
        if terms not in self._assertions:
            self._assertions[terms] = assertions(self.texts, only=terms)
        return self._assertions[terms]

    @cached_property
    def _assertions(self) -> dict[frozenset[str], Assertions]:
        return {}


def sentence_problems(text: str, evidence: Evidence | list[str]) -> list[str]:
    """Why ``text`` is not supported by ``evidence`` (utterance texts): problem names, in order.

    An empty list means supported. The names are listed in the module docstring.
    """
    if not isinstance(evidence, Evidence):
        evidence = Evidence(tuple(evidence))
    problems: list[str] = []
    qa = _QA.fullmatch(text.strip())
    quotes = [qa["question"], qa["answer"]] if qa else _QUOTE.findall(text)
    cores = [_spoken_core(quote) for quote in quotes]
    if any(core and f" {core} " not in evidence.spoken_core for core in cores):
        problems.append("quote")
    # What the sentence says in its own words, outside its quotes.
    claim = "" if qa else _QUOTE.sub(" \u2014 ", text)
    if not numbers_in(claim, skip_lone_one=True) <= evidence.numbers:
        problems.append("number")
    if _unit_problem(claim, evidence):
        problems.append("unit")
    if _dose_problem(claim, evidence):
        problems.append("dose")
    if not drugs_in(claim) <= evidence.drugs:
        problems.append("drug")
    if _finding_problem(claim, evidence):
        problems.append("finding")
    stated = assertions(_as_spoken(claim, evidence))
    problems += _assertion_problems(stated, evidence.assertions(frozenset(stated.occurrences)))
    return problems


def _spoken_core(text: str) -> str:
    """The words of ``text`` without filler, stutters and cut-off words, which a writer may
    tidy away even inside a quote ("i, i just said no" quoted as "I said no")."""
    text = _CUT_OFF.sub(" ", text.lower().replace(" n't", "n't"))
    text = _FILLER_PHRASES.sub(" ", text)
    kept = [w for w in words(text) if w not in FILLER_WORDS]
    return " ".join(w for i, w in enumerate(kept) if i == 0 or w != kept[i - 1])


def _as_spoken(claim: str, evidence: Evidence) -> list[str]:
    """The claim as the assertion reader should see it. A claim the evidence says word for
    word is read as the evidence's own stretch of speech, utterance by utterance, with its
    punctuation (or lack of it), so that its questions and clauses end where they ended; the
    words before the stretch, a dropped "no", stay out. Any other claim is read as written."""
    said = words(claim)
    found = evidence.plain_words.find(f" {' '.join(said)} ") if said else -1
    if found < 0:
        return [claim]
    first = evidence.plain_words.count(" ", 0, found + 1) - 1  # the claim's first word
    last = first + len(said)
    stretch: list[str] = []
    for base, (plain, starts) in zip(evidence.utterance_starts, evidence.offsets, strict=True):
        low, high = max(first, base) - base, min(last, base + len(starts)) - base
        if low < high:
            end = starts[high] if high < len(starts) else len(plain)
            stretch.append(plain[starts[low] : end])
    return stretch


def _unit_problem(claim: str, evidence: Evidence) -> bool:
    for value, unit in quantities(claim, every_reading=False):
        if unit not in evidence.units:
            return True
        paired = {u for v, u in evidence.quantities if v == value}
        if paired and unit not in paired and unit not in implied_units(evidence.joined):
            return True
    return False


def _dose_problem(claim: str, evidence: Evidence) -> bool:
    for drug, values in doses(claim, every_reading=False).items():
        stated = evidence.doses.get(drug)
        if stated and not values <= stated:
            return True
    return False


def _finding_problem(claim: str, evidence: Evidence) -> bool:
    for _, _, finding in findings_in(content_stems(claim)):
        if not supported(finding, evidence.stems):
            return True
    sides = {match.group(1) for match in _SIDED.finditer(claim.lower())}
    return any(f" {side} " not in evidence.plain_words for side in sides & LATERALITY)


def _assertion_problems(claim: Assertions, evidence: Assertions) -> list[str]:
    """Negation and uncertainty, term by term: a sure status in the sentence must not meet the
    opposite sure status in every mention of the term in the evidence.

    A mention inside a question answered "no" is negated, and stands against a sentence that
    negates nothing ("Reports chest pain." after "Any chest pain?" "No."); a question answered
    "yes" or not at all only ever silences a flag, since what a "yes" confirms of a question
    listing several things is a guess.
    """
    problems: list[str] = []
    for kind in ("negated", "uncertain"):
        surely, possibly = f"{kind}_surely", f"{kind}_possibly"
        clash = False
        for term, mine in claim.occurrences.items():
            theirs = evidence.occurrences.get(term, [])
            if not theirs or any(o.open_question for o in theirs):
                continue  # not said, or also asked about with no answer: no verdict
            # A "no" answer stands against a sentence that negates nothing at all; against one
            # that negates something, its scope and the question's may differ: no verdict.
            denied = kind == "negated" and not claim.has_negation
            said = [o for o in theirs if not o.answered or (denied and o.negated_surely)]
            dropped = (
                any(not getattr(o, possibly) for o in mine)
                and bool(said)
                and all(getattr(o, surely) for o in said)
                and not any(not getattr(o, possibly) for o in theirs if o.answered)
            )
            added = (
                any(getattr(o, surely) for o in mine)
                and any(not o.answered for o in theirs)
                and not any(getattr(o, possibly) for o in theirs)
            )
            clash = clash or dropped or added
        said_anywhere = evidence.has_negation if kind == "negated" else evidence.has_hedge
        stated = any(getattr(o, surely) for found in claim.occurrences.values() for o in found)
        if clash or (stated and not said_anywhere):
            problems.append("negation" if kind == "negated" else "uncertainty")
    return problems
