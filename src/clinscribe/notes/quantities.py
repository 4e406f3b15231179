"""Numbers, units and doses as a note or a transcript states them.

Numbers come from digits (500, 38.2, 128/82, 1,000) and from words, the way people speak them:
"five hundred and fifty", "thirty eight point two", "one twenty eight over eighty two" (128 and
82), "twice" (2). A *quantity* is a number with the unit right after it ("40 milligrams" ->
(40, "mg")); a *dose* is a quantity with a dose unit that follows a drug name closely
("lisinopril 40 mg a day" -> lisinopril: 40).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from decimal import Decimal

from clinscribe.notes.clinical_terms import drug_mentions, quantity_tokens, unit_at

# fmt: off
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
# Words that are numbers by themselves; "once" only as a frequency ("once a day").
MULTIPLIERS: dict[str, int] = {"twice": 2, "thrice": 3}
_ONCE = re.compile(r"\bonce (?:a|an|per|every|each|daily|weekly|monthly|nightly|yearly)\b")
# Units a dose is given in: "lisinopril 40 mg", "albuterol two puffs".
DOSE_UNITS: frozenset[str] = frozenset(
    {"mg", "mcg", "g", "ml", "unit", "meq", "tablet", "capsule", "puff", "drop"}
)
# How far after a drug's name its dose may come ("lisinopril, um, 40 milligrams": 4 tokens).
DOSE_WINDOW_TOKENS = 6

_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")


def numbers_in(text: str, *, skip_lone_one: bool = False) -> set[Decimal]:
    """Every number in ``text``, from digits ("128/82" gives 128 and 82) and number words.

    "one" alone is usually a pronoun ("the left one"), so a note sentence may skip it.
    """
    text = _THOUSANDS_COMMA.sub("", text.lower())
    found = {Decimal(match) for match in _DIGITS.findall(text)}
    for run in _number_word_runs(text):
        if not (skip_lone_one and run == ["one"]):
            found |= _run_values(run)
    found |= {Decimal(v) for w, v in MULTIPLIERS.items() if re.search(rf"\b{w}\b", text)}
    if _ONCE.search(text):
        found.add(Decimal(1))
    return found


def quantities(text: str, *, every_reading: bool = True) -> set[tuple[Decimal, str]]:
    """(number, unit) pairs: "40 milligrams" -> (40, "mg"), "128/82 mmHg" -> both with mmhg.

    A spoken run can be read several ways ("one twenty" is 1, 20 or 120); evidence keeps every
    reading, a note sentence (``every_reading=False``) only the largest, the one a writer means.
    """
    tokens = quantity_tokens(text)
    return {
        (value, unit) for _, values, unit in _quantities(tokens, every_reading) for value in values
    }


def units_in(text: str) -> set[str]:
    """The units ``text`` names after a number."""
    return {unit for _, unit in quantities(text)}


def doses(text: str, *, every_reading: bool = True) -> dict[str, set[Decimal]]:
    """Drug (canonical name) -> the doses stated right after its name."""
    tokens = quantity_tokens(text)
    found: defaultdict[str, set[Decimal]] = defaultdict(set)
    mentions = list(drug_mentions(tokens))
    stated = _quantities(tokens, every_reading)
    for n, (_, end, drug) in enumerate(mentions):
        limit = min(end + DOSE_WINDOW_TOKENS, *(s for s, _, _ in mentions[n + 1 :]), len(tokens))
        for start, values, unit in stated:
            if end <= start < limit and unit in DOSE_UNITS:
                found[drug] |= values
                break
    return dict(found)


def _quantities(tokens: list[str], every_reading: bool) -> list[tuple[int, set[Decimal], str]]:
    """(token index, values, unit) for each number followed by a unit."""
    found: list[tuple[int, set[Decimal], str]] = []
    i = 0
    while i < len(tokens):
        start, values, i = i, *_number_at(tokens, i)
        if not values:
            i += 1
            continue
        unit = unit_at(tokens, i)
        if unit is not None:
            found.append((start, values if every_reading else {max(values)}, unit[0]))
    return found


def _number_at(tokens: list[str], i: int) -> tuple[set[Decimal], int]:
    """The number(s) starting at ``tokens[i]`` and the index after them (none: empty set)."""
    token = tokens[i]
    if token[0].isdigit():
        return {Decimal(part) for part in token.split("/")}, i + 1
    if token in MULTIPLIERS:
        return {Decimal(MULTIPLIERS[token])}, i + 1
    end = i
    while end < len(tokens):
        word = tokens[end]
        joiner = (word == "and" and end > i and tokens[end - 1] in _SCALES) or (
            word == "point" and end > i
        )
        if not (word in NUMBER_WORDS or word in _SCALES or joiner):
            break
        end += 1
    while end > i and tokens[end - 1] in ("and", "point"):
        end -= 1
    if end == i:
        return set(), i
    return _run_values(tokens[i:end]), end


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
    if not values:
        return set()
    found = {Decimal(value) for value in values}
    for first, rest in itertools.pairwise(values):
        if 1 <= first <= 9 and 10 <= rest <= 99:
            found.add(Decimal(first * 100 + rest))
    digits = "".join(str(NUMBER_WORDS[w]) for w in fraction.split() if w in _UNITS[:10])
    if digits:  # "thirty eight point two" is 38.2, and no longer 38
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
