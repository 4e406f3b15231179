"""Medicines named in speech, with the dose, route and frequency said beside them.

Drug names come from ``drug-named-entity-recognition`` (an offline dictionary of DrugBank,
MeSH and NHS names and brands, no network at run time), so "tylenol", "lasix" and "norvasc"
are found without a hand-kept list. Its dictionary loads in about three seconds, once per
process, on first use. Doses and frequencies are read with the patterns below, and the note
keeps them exactly as spoken ("500 milligrams", "twice a day"): never converted, so the
verifier finds every number and unit in the evidence.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Matches the dictionary makes that are not medicines when said in a consultation: lab
# analytes and hormones measured in blood, names of people, everyday phrases.
NOT_MEDICINES: frozenset[str] = frozenset(
    {
        "alkaline phosphatase", "uric acid", "aldosterone", "cortisol", "growth hormone",
        "amino acids", "paps", "camila", "all clear", "proton pump", "pituitary hormones",
        "glucose", "oxygen", "water", "alcohol", "caffeine", "sugar", "cholesterol", "hormone",
        "hormones", "protein", "creatinine", "bilirubin", "albumin", "thyroid",
    }
)  # fmt: skip

_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty"
    r"|twenty-five|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|half|a half"
)
_AMOUNT = rf"(?:\d+(?:[.,]\d+)?|(?:(?:{_NUMBER_WORDS})[\s-]?)+)"
DOSE_UNITS = (
    r"mg|milligrams?|mcg|micrograms?|g|grams?|ml|milliliters?|cc|units?|iu|international units"
    r"|tablets?|tabs?|pills?|capsules?|puffs?|drops?|sprays?|patch(?:es)?|teaspoons?"
    r"|tablespoons?|mg/kg|%|percent"
)
DOSE = re.compile(rf"\b(?:to\s+)?{_AMOUNT}\s*(?:{DOSE_UNITS})(?![\w])", re.I)
FREQUENCY = re.compile(
    rf"\b(?:once|twice|three times|four times|{_AMOUNT} times|every (?:other )?(?:{_AMOUNT} )?"
    r"(?:hours?|days?|mornings?|nights?|evenings?|weeks?|months?)|(?:a|per|each|every) (?:day|"
    r"night|week|month)|daily|nightly|weekly|monthly|at (?:night|bedtime)|in the (?:morning|"
    r"evening)|as needed|when needed|with (?:meals|food)|before (?:bed|meals))"
    r"(?: (?:a|per) (?:day|week|month))?\b",
    re.I,
)
ROUTE = re.compile(r"\b(?:by mouth|orally|topically|inhaled|injection|intravenous(?:ly)?)\b", re.I)
DURATION = re.compile(
    rf"\bfor (?:the next )?(?:{_AMOUNT}|a|an|another) (?:more )?(?:days?|weeks?|months?)\b", re.I
)


@dataclass(frozen=True)
class DrugMention:
    """A medicine as said: ``name`` is the spoken words; ``start``/``end`` index ``text``."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Medication:
    """A medicine with what was said next to it, each part copied from the speech."""

    name: str
    dose: str = ""
    route: str = ""
    frequency: str = ""
    duration: str = ""

    def describe(self) -> str:
        """``lisinopril 40 milligrams a day`` — the parts in a fixed order, spoken words only."""
        parts = (self.name, self.dose, self.route, self.frequency, self.duration)
        return " ".join(part for part in parts if part)


_TOKEN = re.compile(r"[a-z0-9][a-z0-9'\-]*", re.I)


@functools.cache
def _finder() -> Callable[..., list[tuple[dict[str, Any], int, int]]]:
    from drug_named_entity_recognition import find_drugs  # loads its dictionary (~3 s, once)

    return find_drugs  # type: ignore[no-any-return]


def find_drug_names(text: str) -> list[DrugMention]:
    """Medicines named in ``text``, in order, without overlaps."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return []
    words = [token.group().lower() for token in tokens]
    found: list[DrugMention] = []
    for _data, first, last in _finder()([w for w in words], is_ignore_case=True):
        name = " ".join(words[first:last])
        if name in NOT_MEDICINES or len(name) < 3:
            continue
        start, end = tokens[first].start(), tokens[last - 1].end()
        if any(m.start < end and start < m.end for m in found):
            continue
        found.append(DrugMention(text[start:end], start, end))
    return sorted(found, key=lambda m: m.start)


def medications_in(text: str) -> list[Medication]:
    """Each medicine named in ``text`` with the dose, route, frequency and duration that follow
    it (up to the next medicine or the end of the clause)."""
    mentions = find_drug_names(text)
    found: list[Medication] = []
    for i, mention in enumerate(mentions):
        stop = mentions[i + 1].start if i + 1 < len(mentions) else len(text)
        tail = text[mention.end : stop]
        tail = re.split(r"[.;?!]|\b(?:but|because|and then|so that|which)\b", tail)[0]
        found.append(
            Medication(
                name=mention.name,
                dose=_first(DOSE, tail),
                route=_first(ROUTE, tail),
                frequency=_first(FREQUENCY, tail),
                duration=_first(DURATION, tail),
            )
        )
    return found


def _first(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    return " ".join(match.group().split()) if match else ""
