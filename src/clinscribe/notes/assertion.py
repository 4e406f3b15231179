"""Is a word said as present, absent or possible? NegEx-style assertion of every term in a text.

Triggers come from ``negspacy`` (NegEx on spaCy; MIT): its clinical negation termset
(``en_clinical``: preceding and following triggers, pseudo-triggers such as "no increase" that
negate nothing, and terminations such as "but"), matched by its own ``Negex.process_negations``
on a ``spacy.blank("en")`` tokenizer: no statistical model, nothing downloaded. We add spoken
forms ("nope", "nothing"; pseudo "not know", "no problem"; contractions read as "not") and a
hedge termset ("possible", "probably", "maybe", "likely", "rule out", ...) that marks
uncertainty the way ConText's "possible existence" does.

Why not the library end to end: medspaCy's ConText (the first choice) pins ``spacy<3.8`` on
Python 3.11 and so ``numpy<2`` (this project runs numpy 2) and pulls QuickUMLS and UnQLite.
negspacy's own pipeline component marks entity spans, at a cost of (clauses x spans) span
objects per text: with every content word a term, four passes made the verifier ~60 ms per
note (measured on ACI-Bench test1). So negspacy finds the triggers and this module draws the
scopes, in one linear pass, the NegEx way: a preceding trigger bears on the words after it, a
following trigger on the words before it, up to the sentence end or a termination. Two scopes:

- *wide*: NegEx's own (sentence end or a termination word);
- *narrow*: also cut at clause punctuation, "and", "so", "because", "if", "when", discourse
  words ("now", "okay"), and after five words (NegEx's original window).

A term is *surely* negated when even the narrow scope covers it, *possibly* negated when the
wide one does. The verifier compares a sure status on one side with the opposite sure status on
the other (see ``evidence.py``), so scope errors fall on the side of silence, not of flags.

Terms are content-word stems plus ``finding:NAME`` for a listed finding ("short of breath" and
"dyspnea" are both ``finding:dyspnea``) and ``drug:NAME`` for a named drug. A question asserts
nothing by itself: its terms are marked ``answered`` (negated after a "no") when the next
sentence opens with yes or no, ``open_question`` otherwise; ``evidence.py`` says how far such
inferred statuses count. A tag question ("I'll order an x-ray, okay?") is a statement. In
unpunctuated speech a question ends where its utterance ends.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import spacy
from negspacy.negation import Negex
from negspacy.termsets import termset
from spacy.attrs import IDX, IS_ALPHA, IS_PUNCT, LOWER
from spacy.language import Language
from spacy.tokens import Doc

from clinscribe.notes.clinical_findings import findings_in
from clinscribe.notes.clinical_terms import (
    DROPPED_TRIGGERS,
    EXTRA_NEGATIONS,
    EXTRA_PSEUDO_NEGATIONS,
    FOLLOWING_HEDGES,
    HEDGE_PSEUDO,
    HEDGES,
    STOPWORDS,
    content_stems,
    drug_mentions,
    drugs_in,
    stem,
    words,
)

# fmt: off
# Words that end a narrow scope, on top of NegEx's terminations and the sentence end.
# Discourse words ("now", "okay") start a new clause in unpunctuated speech.
NARROW_TERMINATIONS: frozenset[str] = frozenset({
    ",", ";", ":", "and", "so", "because", "since", "if", "when", "then", "until", "\u2014",
    "\u2013", "-", "now", "okay", "ok", "alright", "anyway", "also",
})
# The narrow scope also ends after this many words, NegEx's original window ("up to five
# terms" after the trigger, Chapman et al. 2001): "maybe just like 600 milligrams of ibuprofen"
# does not make the ibuprofen uncertain, only the amount.
NARROW_WORDS = 5
# "Mrs. Ward" is one sentence.
TITLES: frozenset[str] = frozenset({"dr", "mr", "mrs", "ms", "st", "vs", "approx", "prof"})
# A final "okay?" after a statement asks for agreement, not for information.
TAG_WORDS: frozenset[str] = frozenset({"okay", "ok", "right", "alright", "correct", "yeah"})
YES_WORDS: frozenset[str] = frozenset({"yes", "yeah", "yep", "yup", "correct", "uh-huh"})
NO_WORDS: frozenset[str] = frozenset({"no", "nope", "nah", "never", "not"})
# Single words that show a text negates or hedges something, even with no term in scope.
NEGATION_WORDS: frozenset[str] = NO_WORDS | {
    "without", "denies", "denied", "deny", "none", "nothing", "neither", "nor", "negative",
}
HEDGE_WORDS: frozenset[str] = frozenset(
    {"maybe", "possibly", "possible", "probably", "likely", "perhaps", "might", "unsure"}
)
# fmt: on


@dataclass(frozen=True)
class Occurrence:
    """One mention of a term and how it is asserted there."""

    negated_surely: bool = False
    negated_possibly: bool = False
    uncertain_surely: bool = False
    uncertain_possibly: bool = False
    answered: bool = False  # read from a yes/no answer to a question, not from the words
    open_question: bool = False  # asked, and not answered yes or no: nothing is asserted


@dataclass
class Assertions:
    """Every asserted term of a text with its occurrences, and which trigger kinds occur."""

    occurrences: dict[str, list[Occurrence]] = field(default_factory=dict)
    has_negation: bool = False
    has_hedge: bool = False


@dataclass(frozen=True)
class _Scopes:
    surely: list[bool]  # per token: inside a narrow scope
    possibly: list[bool]  # per token: inside a wide scope
    triggered: bool  # any trigger at all


_CONTRACTION = re.compile(r"(?<=\w) ?n't\b", re.IGNORECASE)


def _expand_contractions(text: str) -> str:
    """Contractions ("don't", "do n't", with a straight or a curly quote) become "do not": one
    form, so that triggers and pseudo-triggers ("not know") match a writer's expansions and the
    speaker's contractions alike."""
    return _CONTRACTION.sub(" not", text.replace("\u2019", "'"))


class _Tokens:
    """The token attributes the scopes need, read once (each ``Doc`` access builds objects)."""

    def __init__(self, doc: Doc) -> None:
        strings = doc.vocab.strings
        rows = doc.to_array([LOWER, IS_ALPHA, IS_PUNCT, IDX]).tolist() if len(doc) else []
        self.lower: list[str] = [strings[row[0]] for row in rows]
        self.alpha: list[bool] = [bool(row[1]) for row in rows]
        self.punct: list[bool] = [bool(row[2]) for row in rows]
        self.idx: list[int] = [row[3] for row in rows]  # character offset


@functools.cache
def tokenizer() -> Language:
    """``spacy.blank("en")``: a rule-based tokenizer, built once per process."""
    return spacy.blank("en")


@functools.cache
def _matchers() -> dict[str, Negex]:
    """negspacy trigger matchers for negation and for uncertainty (built once, ~0.2 s)."""
    negation: dict[str, list[str]] = termset("en_clinical").get_patterns()  # type: ignore[no-untyped-call]
    negation["preceding_negations"] = [
        *(t for t in negation["preceding_negations"] if t not in DROPPED_TRIGGERS),
        *EXTRA_NEGATIONS,
    ]
    negation["pseudo_negations"] += EXTRA_PSEUDO_NEGATIONS
    hedge = {
        "pseudo_negations": list(HEDGE_PSEUDO),
        "preceding_negations": list(HEDGES),
        "following_negations": list(FOLLOWING_HEDGES),
        "termination": list(negation["termination"]),
    }
    nlp = tokenizer()
    return {
        name: Negex(nlp, f"clinscribe_{name}", patterns, extension_name=f"clinscribe_{name}")
        for name, patterns in (("negated", negation), ("uncertain", hedge))
    }


@functools.cache
def _trigger_words() -> frozenset[str]:
    """Single words that are (part of) a trigger: never terms themselves."""
    found: set[str] = set()
    for matcher in _matchers().values():
        for phrases in (matcher.preceding_negations, matcher.following_negations):
            for phrase in phrases:
                found.update(t.lower_ for t in tokenizer().make_doc(phrase) if t.is_alpha)
    return frozenset(found)


def assertions(texts: str | Sequence[str], only: Collection[str] | None = None) -> Assertions:
    """The terms a text asserts, each with its negation and uncertainty status.

    ``texts``: one text, or utterances in order (read as one text, but a question that ends an
    unpunctuated utterance, as in "[doctor] have you had any fever [patient] no", ends its
    sentence there). ``only``: the terms worth looking at, e.g. those of a note sentence when
    reading its evidence; then only the sentences holding one of them are read.
    """
    utterances = [texts] if isinstance(texts, str) else list(texts)
    utterances = [_expand_contractions(text) for text in utterances]
    said = set(words(" ".join(utterances)))
    sentences = _spoken_sentences(utterances)
    if only is not None:
        sentences = _sentences_about(sentences, only)
    pieces: list[str] = []
    ends: dict[int, str] = {}  # where, in the joined text, a spoken sentence ends, and how
    length = -1
    for text, ending in (part for sentence in sentences for part in sentence):
        pieces.append(text)
        length += 1 + len(text)
        if ending is not None:
            ends[length] = ending
    doc = tokenizer().make_doc(" ".join(pieces))
    tokens = _Tokens(doc)
    sentence_of, questions = _sentences(tokens, ends)
    negated = _scopes(doc, tokens, "negated", sentence_of)
    uncertain = _scopes(doc, tokens, "uncertain", sentence_of)
    occurrences: defaultdict[str, list[Occurrence]] = defaultdict(list)
    for start, end, term in _terms(tokens):
        if only is not None and term not in only:
            continue
        sentence = sentence_of[start]
        if sentence in questions:
            answer = questions[sentence]
            # A question asserts nothing; a "no" after it negates what it asked about.
            denied = bool(answer)
            occurrence = Occurrence(
                negated_surely=denied,
                negated_possibly=denied,
                answered=answer is not None,
                open_question=answer is None,
            )
        else:
            edges = (start, end - 1)  # preceding triggers reach the first, following the last
            occurrence = Occurrence(
                negated_surely=any(negated.surely[i] for i in edges),
                negated_possibly=any(negated.possibly[i] for i in edges),
                uncertain_surely=any(uncertain.surely[i] for i in edges),
                uncertain_possibly=any(uncertain.possibly[i] for i in edges),
            )
        occurrences[term].append(occurrence)
    negates = negated.triggered or bool(said & NEGATION_WORDS)
    return Assertions(
        occurrences=dict(occurrences),
        has_negation=negates,
        has_hedge=uncertain.triggered or bool(said & HEDGE_WORDS),
    )


def _scopes(doc: Doc, tokens: _Tokens, kind: str, sentence_of: list[int]) -> _Scopes:
    """Which tokens a trigger of ``kind`` bears on, with the narrow and the wide scope."""
    size = len(tokens.lower)
    preceding, following, terminating = _matchers()[kind].process_negations(doc)
    wide_stops = {start for _, start, _ in terminating}
    narrow_stops = wide_stops | {
        i for i, word in enumerate(tokens.lower) if word in NARROW_TERMINATIONS
    }
    surely, possibly = [False] * size, [False] * size
    for stops, marks, reach in ((narrow_stops, surely, NARROW_WORDS), (wide_stops, possibly, size)):
        for _, start, end in preceding:  # forward, to the sentence end or a stop
            i, words_left = end, reach
            while i < size and i not in stops and sentence_of[i] == sentence_of[start]:
                marks[i] = True
                words_left -= not tokens.punct[i]
                if not words_left:
                    break
                i += 1
        for _, start, _ in following:  # backward, to the sentence start or a stop
            i, words_left = start - 1, reach
            while i >= 0 and i not in stops and sentence_of[i] == sentence_of[start]:
                marks[i] = True
                words_left -= not tokens.punct[i]
                if not words_left:
                    break
                i -= 1
    return _Scopes(surely, possibly, bool(preceding or following))


def _sentences(
    tokens: _Tokens, spoken_ends: dict[int, str]
) -> tuple[list[int], dict[int, bool | None]]:
    """Each token's sentence number, and for each question: answered "no" (True), "yes"
    (False) or neither (None). A sentence ends after ".", "?" or "!", or where a spoken
    sentence ends (``spoken_ends``: character offset -> "statement" or "question")."""
    sentence_of: list[int] = []
    ends: list[int] = []  # index of each sentence's last token
    spoken: set[int] = set()  # sentences that are spoken questions
    lower = tokens.lower
    for i, word in enumerate(lower):
        sentence_of.append(len(ends))
        after_title = word == "." and i > 0 and lower[i - 1] in TITLES
        spoken_end = spoken_ends.get(tokens.idx[i] + len(word))
        if spoken_end is not None:
            if spoken_end == "question":
                spoken.add(len(ends))
            ends.append(i)
        elif word and set(word) <= set(".?!") and not after_title:
            ends.append(i)
    if not ends or ends[-1] != len(lower) - 1:
        ends.append(len(lower) - 1)
    questions: dict[int, bool | None] = {}
    for number, last in enumerate(ends):
        if last < 0 or ("?" not in lower[last] and number not in spoken):
            continue
        if last >= 2 and lower[last - 1] in TAG_WORDS and lower[last - 2] == ",":
            continue  # "..., okay?": a statement asking for agreement
        after = range(last + 1, ends[number + 1] + 1) if number + 1 < len(ends) else range(0)
        reply = next((lower[i] for i in after if tokens.alpha[i]), "")
        start = ends[number - 1] + 1 if number else 0
        if any(w in NEGATION_WORDS for w in lower[start : last + 1]):
            reply = ""  # "you don't smoke?" "no": which way it goes is anyone's guess
        questions[number] = True if reply in NO_WORDS else False if reply in YES_WORDS else None
    return sentence_of, questions


def _terms(tokens: _Tokens) -> list[tuple[int, int, str]]:
    """(start, end, term) for each content word, listed finding and drug name."""
    triggers = _trigger_words()
    content = [
        (i, stem(word))
        for i, (word, alpha) in enumerate(zip(tokens.lower, tokens.alpha, strict=True))
        if alpha and word not in STOPWORDS and word not in triggers
    ]
    terms = [(i, i + 1, term) for i, term in content]
    for start, end, finding in findings_in([term for _, term in content]):
        terms.append((content[start][0], content[end - 1][0] + 1, f"finding:{finding.name}"))
    for start, end, drug in drug_mentions(tokens.lower):
        terms.append((start, end, f"drug:{drug}"))
    return terms


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_TERMINAL = re.compile(r"[.?!](?:\s|$)")
# How an unpunctuated question opens, after filler: "okay so have you had any fever".
# An unpunctuated stretch of speech that asks something: it opens like a question, after
# filler ("okay so have you had any fever"), or ends with an auxiliary and its subject ("...
# now tell me do you have any family members with spine conditions"; the question then starts
# there, at most ``QUESTION_TAIL_WORDS`` words before the end).
_QUESTION_OPENING = re.compile(
    r"^\W*(?:(?:okay|ok|alright|all right|so|and|and then|then|um+|uh+|well|now|yeah|right"
    r"|mm-?hmm|hmm+|great|good)\W+)*(?:do|does|did|are|is|was|were|have|has|had|can|could"
    r"|would|will|any|how|what|when|where|which|who|why)\b",
    re.IGNORECASE,
)
_QUESTION_INSIDE = re.compile(
    # not "I will have you come back", "let me have you", "we'll have you"
    r"(?<!\bwill )(?<!\bto )(?<!\blet me )(?<!\bi )(?<!\bwe )(?<!'ll )(?<!\blet )(?<!\bna )"
    r"\b(?:do|does|did|are|is|have|has|can|could|would)(?: not)? (?:you|your|it|there"
    r"|he|she|they|anyone|anybody)\b",
    re.IGNORECASE,
)
QUESTION_TAIL_WORDS = 15


def _question_start(part: str) -> int | None:
    """Where the question in an unpunctuated stretch starts, if it asks one."""
    if _QUESTION_OPENING.match(part):
        return 0
    for match in _QUESTION_INSIDE.finditer(part):
        if len(part[match.start() :].split()) <= QUESTION_TAIL_WORDS:
            return match.start()
    return None


_AFTER_TITLE = re.compile(rf"\b(?:{'|'.join(TITLES)})\.$", re.IGNORECASE)


# A sentence as a reader sees it across utterances: its parts, each (text, how it ends: None
# if it runs on, "statement" or "question"). An unterminated utterance runs on into the next,
# as the note writers join them.
_Sentence = list[tuple[str, str | None]]


def _spoken_sentences(utterances: list[str]) -> list[_Sentence]:
    sentences: list[_Sentence] = []
    ended = True
    for text in utterances:
        for part, end in _parts(text):
            if ended:
                sentences.append([(part, end)])
            else:
                sentences[-1].append((part, end))
            ended = end is not None
    return sentences


def _parts(text: str) -> list[tuple[str, str | None]]:
    """An utterance's sentences and how each ends. An unpunctuated stretch (the last one) that
    asks something is cut where the question starts: the words before it are a statement."""
    parts = [part.strip() for part in _split(text) if part.strip()]
    found: list[tuple[str, str | None]] = []
    for part in parts:
        if _TERMINAL.search(part + " "):
            found.append((part, "statement"))
            continue
        start = _question_start(part)
        if start is None:
            found.append((part, None))
            continue
        before, asked = part[:start].strip(), part[start:].strip()
        found += [(before, "statement")] if before else []
        found.append((asked, "question"))
    return found


def _split(text: str) -> list[str]:
    parts: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if parts and _AFTER_TITLE.search(parts[-1]):
            parts[-1] += " " + piece
        else:
            parts.append(piece)
    return parts


def _sentences_about(sentences: list[_Sentence], terms: Collection[str]) -> list[_Sentence]:
    """Only the sentences that hold one of ``terms``, each with the sentence after it (a
    question's answer). Scopes never cross a sentence, and a note sentence's evidence is often
    a long utterance of which one sentence matters."""
    wanted = set(terms)
    keep: set[int] = set()
    for i, sentence in enumerate(sentences):
        text = " ".join(part for part, _ in sentence)
        stems = content_stems(text)
        labels = set(stems) | {f"finding:{f.name}" for _, _, f in findings_in(stems)}
        labels |= {f"drug:{drug}" for drug in drugs_in(text)}
        if labels & wanted:
            keep.update((i, i + 1))
    return [sentences[i] for i in sorted(keep) if i < len(sentences)]
