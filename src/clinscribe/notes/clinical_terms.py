"""Clinical vocabulary the verifier and the omission finder share: words, drugs, units, findings.

- Drug names come from the ``drug-named-entity-recognition`` package (Fast Data Science; MIT;
  ~107,000 brand and generic names from DrugBank, MeSH and Wikipedia, each mapped to one
  canonical drug, so "tylenol" and "acetaminophen" are the same drug), through its
  ``find_drugs``: exact matches only. Offline: the package reaches the network only when asked
  for structures, OMOP ids or PubChem data, which we never ask for.
- Units are normalised to one key ("milligrams" -> "mg", "%" -> "percent").
- Findings (symptoms, signs, diagnoses, body parts) are small synonym groups, matched on word
  stems, so a note may say "dyspnea" for "short of breath" or "hypertension" for "high blood
  pressure". The groups are for checking, not coding: ICD-10 coding lives elsewhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

FindingKind = Literal["symptom", "diagnosis", "anatomy"]

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|%|\u00b0")
# For quantities: decimals and ratios stay whole ("38.2", "128/82"); hyphens split words.
_QUANTITY_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)*|[a-z]+(?:'[a-z]+)*|%|\u00b0")


def _plain(text: str) -> str:
    # ASR and tokenised corpora write "don't" with a curly quote or as "do n't": one shape.
    return text.lower().replace("\u2019", "'").replace(" n't", "n't")


def words(text: str) -> list[str]:
    """Lower-case word tokens ("z-pack" and "covid-19" stay whole)."""
    return _WORD.findall(_plain(text))


def word_offsets(text: str) -> tuple[str, list[int]]:
    """``text`` in the lower-case form ``words`` reads, and where each of its words starts."""
    plain = _plain(text)
    return plain, [match.start() for match in _WORD.finditer(plain)]


def quantity_tokens(text: str) -> list[str]:
    """Tokens for reading quantities: "50-year-old" -> 50 year old; "128/82 mmHg" -> 128/82 mmhg."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", _plain(text))  # 1,000 is one number
    return _QUANTITY_TOKEN.findall(text.replace("-", " "))


def stem(word: str) -> str:
    """A light suffix stripper: "coughs", "coughing", "coughed" -> "cough"; "injuries" -> "injury".

    Deliberately crude (no dictionary): both sides of every comparison go through it.
    """
    word = word.lower().replace("'", "")
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            # "swelling" -> "swell", "stopped" -> "stop"
            if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "ls":
                word = word[:-1]
            return word
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# Words that never carry a clinical fact by themselves: grammar, filler, conversation.
# fmt: off
STOPWORDS: frozenset[str] = frozenset((
    "a", "an", "the", "any", "of", "to", "for", "in", "on", "at", "all", "i", "you", "he", "she",
    "it", "we", "they", "me", "him", "them", "us", "have", "has", "had", "do", "does", "did", "is",
    "was", "are", "were", "be", "been", "being", "am", "really", "much", "more", "some", "that",
    "this", "these", "those", "my", "your", "his", "her", "its", "our", "their", "and", "or", "so",
    "uh", "um", "like", "very", "think", "know", "need", "want", "wan", "gon", "na", "going", "go",
    "get", "got", "just", "seem", "sure", "with", "about", "as", "by", "from", "up", "out", "if",
    "then", "than", "there", "here", "what", "which", "who", "when", "where", "how", "why", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must", "also", "too", "well",
    "okay", "ok", "yeah", "yes", "yep", "alright", "right", "oh", "hmm", "mm", "mhm", "hmm", "um",
    "uh-huh", "mm-hmm", "kind", "sort", "lot", "little", "bit", "thing", "things", "something",
    "anything", "everything", "stuff", "say", "said", "tell", "told", "let", "let's", "i'm",
    "i've", "i'll", "i'd", "you're", "you've", "you'll", "it's", "that's", "there's", "we'll",
    "we're", "he's", "she's", "mean", "guess", "actually", "pretty", "maybe", "feel", "felt",
    "make", "made", "see", "look", "looks", "looking", "take", "taking", "took", "patient",
    "patients", "reports", "reported", "report", "states", "stated", "notes", "noted", "today",
    "now", "again", "still", "even", "only", "over", "into", "after", "before", "because", "while",
    "per", "via", "each", "every", "other", "another", "one", "ones", "both", "either", "same",
    "doctor", "dr", "mr", "mrs", "ms", "miss", "sir", "ma'am", "dragon", "hey", "hi", "hello",
    "good", "great", "fine", "thanks", "thank", "please", "sorry", "come", "came", "way",
))
# fmt: on


def content_stems(text: str) -> list[str]:
    """Stems of the words of ``text`` that can carry a clinical fact, in order."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and not w.isdigit()]


# --- units --------------------------------------------------------------------------------------
# Normalised unit -> spoken and written forms (one or more words each, as ``words`` yields them).
UNITS: dict[str, tuple[str, ...]] = {
    "mg": ("mg", "mgs", "milligram", "milligrams", "milligramme", "milligrammes"),
    "mcg": ("mcg", "mcgs", "\u00b5g", "ug", "microgram", "micrograms"),
    "g": ("g", "gm", "gram", "grams"),
    "kg": ("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "ml": ("ml", "mls", "milliliter", "milliliters", "millilitre", "millilitres", "cc", "ccs"),
    "liter": ("liter", "liters", "litre", "litres"),
    "unit": ("unit", "units", "iu"),
    "meq": ("meq", "milliequivalent", "milliequivalents"),
    "mmol": ("mmol", "millimole", "millimoles"),
    "mg/dl": ("mg/dl", "milligrams per deciliter", "milligram per deciliter"),
    "mmhg": ("mmhg", "mm hg", "millimeters of mercury", "millimetres of mercury"),
    "bpm": ("bpm", "beats per minute", "beats a minute", "beats", "beat per minute"),
    "breaths": ("breaths per minute", "breaths a minute", "breaths"),
    "percent": ("%", "percent", "per cent", "pct"),
    "degrees": ("degrees", "degree", "\u00b0", "\u00b0f", "\u00b0c", "fahrenheit", "celsius"),
    "cm": ("cm", "cms", "centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "inch": ("inch", "inches"),
    "foot": ("foot", "feet", "ft"),
    "second": ("second", "seconds", "sec", "secs"),
    "minute": ("minute", "minutes", "min", "mins"),
    "hour": ("hour", "hours", "hr", "hrs"),
    "day": ("day", "days"),
    "week": ("week", "weeks", "wk", "wks"),
    "month": ("month", "months"),
    "year": ("year", "years", "yr", "yrs"),
    "tablet": ("tablet", "tablets", "tab", "tabs", "pill", "pills"),
    "capsule": ("capsule", "capsules", "cap", "caps"),
    "puff": ("puff", "puffs"),
    "drop": ("drop", "drops"),
    "times": ("times",),
}
_UNIT_FORMS: dict[tuple[str, ...], str] = {
    tuple(quantity_tokens(form.replace("/", " "))): unit
    for unit, forms in UNITS.items()
    for form in forms
}
_MAX_UNIT_WORDS = max(len(form) for form in _UNIT_FORMS)
# A unit the clinic writes for a vital sign the evidence names: "temperature of 38.2" supports
# "38.2 degrees", "blood pressure 120/80" supports "120/80 mmHg".
VITAL_UNITS: dict[str, tuple[str, ...]] = {
    "degrees": ("temperature", "temp", "fever", "febrile"),
    "mmhg": ("blood pressure", "bp", "pressure"),
    "bpm": ("heart rate", "pulse", "hr"),
    "percent": ("oxygen", "o2", "sat", "sats", "saturation", "spo2", "pulse ox"),
    "breaths": ("respiratory rate", "respirations", "breathing rate", "rr"),
}


def unit_at(tokens: Sequence[str], start: int) -> tuple[str, int] | None:
    """The unit at ``tokens[start]`` (from ``quantity_tokens``; longest form first) and its size."""
    for size in range(min(_MAX_UNIT_WORDS, len(tokens) - start), 0, -1):
        unit = _UNIT_FORMS.get(tuple(tokens[start : start + size]))
        if unit is not None:
            return unit, size
    return None


def implied_units(text: str) -> set[str]:
    """Units implied by the vital signs ``text`` names."""
    padded = f" {' '.join(words(text))} "
    return {
        unit for unit, names in VITAL_UNITS.items() if any(f" {name} " in padded for name in names)
    }


# --- drugs --------------------------------------------------------------------------------------
# Entries of the drug dictionary that are everyday words, lab analytes or first names in
# consultations (found by running the lookup over all ACI-Bench dialogues), never meant as drugs.
NOT_DRUGS: frozenset[str] = frozenset((
    "diamond", "diamonds", "sits", "cashew", "cashews", "paps", "all clear", "agit", "camila",
    "cow's milk", "alkaline phosphatase", "uric acid", "aldosterone", "ferritin", "antibodies",
    "immunoglobulin a", "amino acids", "proton pump", "cortisol",
))  # fmt: skip


@functools.cache
def _drug_finder() -> Callable[..., list[tuple[dict[str, Any], int, int]]]:
    """``find_drugs``, imported on first use: the import loads the dictionary (~1.5 s)."""
    from drug_named_entity_recognition import find_drugs

    return find_drugs  # type: ignore[no-any-return]


def drug_mentions(tokens: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, canonical name) of each drug named in ``tokens``, in order.

    Exact, case-insensitive matches of two-word then one-word names; never fuzzy, and none of
    the package's network look-ups (structures, OMOP ids, PubChem) is asked for.
    """
    found: list[tuple[int, int, str]] = []
    for data, start, end in _drug_finder()(list(tokens), is_ignore_case=True):
        said = " ".join(tokens[start:end]).lower()
        if said in NOT_DRUGS or len(said) < 3:
            continue
        found.append((start, end, str(data.get("name") or said).lower()))
    return sorted(set(found))


def drugs_in(text: str) -> set[str]:
    """Canonical names of the drugs ``text`` names ("Tylenol" -> "acetaminophen")."""
    return {canonical for _, _, canonical in drug_mentions(words(text))}


# --- negation and uncertainty triggers (used with negspacy's termsets; see assertion.py) ------
# fmt: off
EXTRA_NEGATIONS: tuple[str, ...] = (
    "nothing", "none", "nope", "nah", "neither", "nor", "negative", "no longer",
)
# NegEx's "ro" (rule out) is a syllable in speech ("reaching out to ro... urology").
DROPPED_TRIGGERS: frozenset[str] = frozenset({"ro"})
# Phrases that contain a negation word but negate nothing clinical.
EXTRA_PSEUDO_NEGATIONS: tuple[str, ...] = (
    "not sure", "no problem", "not a problem", "no worries", "not bad", "not too bad",
    "no matter", "if not", "whether or not", "never mind", "not matter",
    "no rush", "not just", "no doubt", "no question", "not that long",
    # "I don't know", "the patient does not know": unknowing, not a denial.
    "not know", "not remember", "not recall",
)
HEDGES: tuple[str, ...] = (
    "possible", "possibly", "probable", "probably", "maybe", "perhaps", "might", "may be",
    "may have", "could be", "could have", "likely", "suspect", "suspected", "suspicious for",
    "suspicion of", "concern for", "concerned about", "concerning for", "worried about",
    "worry about", "rule out", "r/o", "questionable", "question of", "not sure", "unsure",
    "uncertain", "unclear", "differential", "versus", "vs", "presumed", "presumably",
    "cannot rule out", "not rule out", "cannot exclude",
)
FOLLOWING_HEDGES: tuple[str, ...] = ("is possible", "is likely", "is suspected", "is unclear")
HEDGE_PSEUDO: tuple[str, ...] = (
    "no doubt", "without a doubt", "may i", "might as well", "if possible", "as possible",
)
# fmt: on
