"""Structured findings read from one sentence: vital signs, allergies, problems, the reason
for the visit, and what a yes/no question asked about.

Each reader returns the spoken words it found (never a normalised or converted form), so a
note line built from them can cite the sentence and hold nothing the speaker did not say.
"""

from __future__ import annotations

import re

from clinscribe.notes.negation import assertion

# Numbers as words, as people say them; shared with :mod:`kinds`.
NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundred"
)
NUMBER = rf"(?:\d+(?:\.\d+)?|(?:\b(?:{NUMBER_WORDS})\b[\s-]*)+(?:point(?:\s+(?:{NUMBER_WORDS}))+)?)"

# Vital signs by the names people say; the note keeps the name as said ("bp", "sats").
VITAL_NAMES = (
    r"blood pressure|bp|heart rate|pulse(?: rate)?|temperature|temp|respiratory rate"
    r"|respirations|resp rate|oxygen saturation|oxygen sat(?:uration)?s?|o2 sat(?:uration)?s?"
    r"|sats|pulse ox|oxygen levels?|spo2|weight|bmi|height"
)
VITAL_UNITS = (
    r"degrees(?: fahrenheit| celsius| f| c)?|percent|%|beats per minute|bpm|breaths per minute"
    r"|pounds|lbs|kilos|kilograms|kg|millimeters of mercury|mm ?hg|feet|inches|centimeters|cm"
)
_VITAL = re.compile(
    rf"\b(?P<name>{VITAL_NAMES})\b(?:\s+(?:is|was|of|at|today|here|in the office|reading|reads"
    r"|looks|looked|came in at|about|around|it's|its|sitting at|running|been|like|was like"
    rf"|were|are|nice and|normal at),?)*\s+(?P<value>{NUMBER}(?:\s*(?:over|/)\s*{NUMBER})?)"
    rf"(?:\s*(?P<unit>{VITAL_UNITS})\b)?",
    re.I,
)


def vitals_in(text: str) -> list[str]:
    """Vital signs as said, each "name value unit": ["temperature 38.2 degrees", "bp 128/82"]."""
    found: list[str] = []
    for match in _VITAL.finditer(text):
        value = " ".join(match.group("value").split()).rstrip(" -")
        if not re.search(r"\d|[a-z]", value):
            continue
        unit = match.group("unit")
        found.append(" ".join(part for part in (match.group("name"), value, unit) if part))
    return found


_ALLERGIC = re.compile(
    r"\b(?:allergic|allergy|allergies|allergic reaction)\s+(?:to|with|from)\s+(?P<what>[^,.;?!]+)",
    re.I,
)
_NO_ALLERGIES = re.compile(
    r"\b(?:no|not any|n't have any|n't have|none)\s+(?:known\s+)?(?:drug\s+)?allergies\b"
    r"|\bnot allergic to (?:anything|any)\b|\bn't have any allergies\b",
    re.I,
)
# Words that end what a patient is allergic to: "allergic to penicillin that i know of".
_ALLERGY_END = re.compile(
    r"\s+(?:that|which|and i|but|so|when|because|i think|it|as far as)\b.*$", re.I
)


def allergy_in(text: str) -> tuple[str, str] | None:
    """("allergic", "sulfa drugs") for "I'm allergic to sulfa drugs"; ("none", "") for "no
    allergies"; None when the sentence says nothing about allergies (or only asks)."""
    if _NO_ALLERGIES.search(text):
        return ("none", "")
    match = _ALLERGIC.search(text)
    if match is None:
        return None
    what = _ALLERGY_END.sub("", match.group("what")).strip()
    if not what or len(what.split()) > 6:
        return None
    status = assertion(text, match.group().split()[0])
    if status == "negated":
        return ("none", "") if re.fullmatch(r"anything|any\w*", what, re.I) else None
    if status == "uncertain":  # "I might be allergic to sulfa": not an allergy list entry
        return None
    return ("allergic", what)


# "presents for her annual exam", "here today for follow-up of his diabetes".
_REASON = re.compile(
    r"\b(?:presents?|presenting|is here|are here|here|coming in|came in|comes in|referred(?: to"
    r" me| here)?)(?:\s+today)?(?:\s+(?:to (?:the )?clinic|in clinic))?\s+(?:for|with)\s+"
    r"(?:(?:a|an|the|her|his|your|their|some)\s+)?(?P<reason>[^,.;?!]+?)(?=\s*(?:[,.;?!]|$|\btoday"
    r"\b|\bthat\b|\bwhich\b|\bbecause\b|\band (?:she|he|you|i)\b))",
    re.I,
)


def visit_reason_in(text: str) -> str | None:
    """The reason for the visit from a presentation ("... who presents for her annual exam")."""
    match = _REASON.search(text)
    if match is None:
        return None
    reason = match.group("reason").strip()
    words = reason.split()
    if not 1 <= len(words) <= 8 or words[0].lower() in ("you", "me", "a", "the", "it", "that"):
        return None
    return reason


_STOP = (
    r"i|we|you|it|let's|that|which|so|and|but|uh|um|i'm|i've|we're|we'll|i'll|you're|you've"
    r"|it's|there's|is|was|are|has|have|right|okay"
)
_DETERMINERS = r"(?:(?:your|the|this|her|his|a|an|uh|um|you know|newly diagnosed|for|of),?\s+)*"
_PROBLEM_NAME = (
    rf"(?P<problem>(?:(?!(?:{_STOP})\b)[a-z][a-z0-9'/-]*\s*){{1,5}}?)"
    rf"(?=\s*(?:,|\.|$|\b(?:{_STOP})\b|\bstandpoint\b|\bperspective\b))"
)
# Tried in order: "first problem, your X" is surer than "for your X," .
_PROBLEMS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern + _DETERMINERS + _PROBLEM_NAME, re.I)
    for pattern in (
        r"\b(?:first|second|third|fourth|fifth|next|last|final|other)\s+(?:problem|issue)s?"
        r"(?:\s*,)?(?:\s+(?:of|for|is|with))?\s*,?\s+",
        r"\b(?:in terms of|regarding|with regards? to|as far as)\s*,?\s+",
        r"\bfor\s+(?=(?:your|the|her|his)(?:\s+[a-z'-]+){1,4}\s*,)",
    )
)
_STANDPOINT = re.compile(
    r"\bfrom an? (?P<problem>(?:[a-z][a-z0-9'/-]*\s+){1,4}?)(?:standpoint|perspective)\b", re.I
)
# Not problems: times, amounts and everyday phrases that fit the patterns above.
_NOT_A_PROBLEM = re.compile(
    r"^(?:the )?(?:most part|record|kids?|next|last|first|now|today|a while|a bit|a little|two"
    r"|three|four|five|six|one|couple|few|several|some|years?|months?|weeks?|days?|that|this"
    r"|all|them|those|these|now on|right now|example|instance|sure|me|him|her|us|what|how"
    r"|your|my|our|their|his|mind|good measure|life|long|like|about|instance|now|real)\b",
    re.I,
)


def problem_in(text: str) -> str | None:
    """The problem a clinician turns to: "for your second problem, your hypothyroidism" ->
    "hypothyroidism"; "from a depression standpoint" -> "depression"."""
    lowered = text.lower()
    match = _PROBLEMS[0].search(lowered) or _STANDPOINT.search(lowered)
    for pattern in _PROBLEMS[1:]:
        match = match or pattern.search(lowered)
    if match is None:
        return None
    problem = " ".join(match.group("problem").split()).strip(" ,-")
    if not problem or _NOT_A_PROBLEM.match(problem) or len(problem) < 4:
        return None
    start = lowered.index(problem, match.start())
    if assertion(text, problem) == "negated":  # "you weren't fasting for the blood check, so"
        return None
    return text[start : start + len(problem)]
