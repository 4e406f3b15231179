"""What kind of fact a sentence states, by rules: vitals, exam, results, plan, assessment,
history and its parts. A sentence no rule matches is left out of the note, not guessed.

Rules are tried in :data:`KIND_PRIORITY` order and the first match wins. Objective first: a
number with a unit is the least ambiguous cue. Plan before assessment: "I think it's
bronchitis, so I'll prescribe..." is an order. History last: "my", "since" are everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clinscribe.notes.model import FactKind
from clinscribe.notes.person import Voice
from clinscribe.notes.spoken_findings import NUMBER_WORDS

_NUM = rf"(?:\d+(?:\.\d+)?|\b(?:{NUMBER_WORDS})\b)"
# The patient describing themselves, not a clinician stating a finding or a diagnosis.
_PATIENT_VOICE = re.compile(
    r"\b(?:my|i've|i'm|i have|i had|i feel|i felt|i get|i got|history)\b", re.I
)
# A medicine the patient already takes is history, not a new order.
_PATIENT_MEDICATION = r"\b(?:i'm|i am|i've been|i have been|i was|been) (?:taking|on)\b|\bi take\b"
# "We'll get an x-ray" is a plan, not a result.
_FUTURE_VOICE = r"\b(?:i'll|we'll|i will|we will|going to|gon na|wan na|let's|order|get an?)\b"
_CONDITIONS = (
    r"infection|\w{3,}itis|\w{3,}osis|pneumonia|sprain|strain|fracture|virus|viral|bacterial"
    r"|flu|cold|allerg\w*|asthma|migraine|reflux|ulcer|anemia|diabetes|hypertension|injury"
)


@dataclass(frozen=True)
class Rule:
    """A regex that marks a sentence as one kind, unless the ``unless`` regex also matches or,
    for ``clinician_only`` rules, the patient is speaking."""

    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None
    clinician_only: bool = False

    def matches(self, text: str, voice: Voice | None = None) -> bool:
        # Unknown speaker: the patient's own words ("my", "I've") say who is speaking.
        patient = voice == "patient" or (voice is None and _PATIENT_VOICE.search(text))
        if self.clinician_only and patient:
            return False
        vetoed = self.unless is not None and self.unless.search(text) is not None
        return not vetoed and self.pattern.search(text) is not None


def _rule(pattern: str, unless: str | None = None, *, clinician_only: bool = False) -> Rule:
    veto = re.compile(unless, re.I) if unless else None
    return Rule(re.compile(pattern, re.I), veto, clinician_only)


KIND_PRIORITY: tuple[FactKind, ...] = (
    "vitals", "results", "exam", "follow_up", "plan", "assessment", "allergies", "medications",
    "social_family", "past_history", "history",
)  # fmt: skip

RULES: dict[FactKind, tuple[Rule, ...]] = {
    "vitals": (
        _rule(
            r"\b(?:blood pressure|bp|temperature|temp|pulse|heart rate|oxygen|o2 sats?|sats"
            rf"|saturation|spo2|respiratory rate|resp rate|weight|weighs?)\b[^.?!]*{_NUM}"
            r"|\bvital signs\b|\bvitals\b",
            clinician_only=True,
        ),
        _rule(
            r"\b(?:blood pressure|heart rate|pulse|oxygen\w*|temperature)\b"
            r"[^.?!]*\b(?:normal|good|fine|stable|elevated|high|low)\b",
            unless=_FUTURE_VOICE,
            clinician_only=True,
        ),
    ),
    "results": (
        _rule(
            r"\b(?:x-?rays?|labs?|lab work|blood work|blood tests?|results?|ecg|ekg|echo\w*|scan"
            r"|mri|ct|urinalysis|swab|culture|a1c|hemoglobin|cholesterol|panel|ultrasound"
            r"|biopsy|imaging)\b[^.?!]*\b(?:shows?|showed|shown|revealed?|came back|appears?"
            r"|demonstrat\w*|confirm\w*|negative|positive|elevated|normal|was|were|is)\b",
            unless=rf"{_FUTURE_VOICE}|\?",
            clinician_only=True,
        ),
    ),
    "exam": (
        _rule(r"\bon (?:exam|examination)\b|\bexam(?:ination)? (?:shows|reveals|today)\b"),
        _rule(
            r"\b(?:lungs?|chest sounds|i can hear|i hear|heart sounds|murmur|wheez\w*|crackles"
            r"|tender\w*|range of motion|sensation|reflexes|bruis\w*|effusion|edema|pulses"
            r"|appreciate|palpat\w*|strength|abdomen is|soft|supple|clear to auscultation|swelling"
            r"|swollen|rash"
            r"|regular rate|erythema|lesions?|lymph nodes?)\b",
            unless=rf"\border\b|{_FUTURE_VOICE}",
            clinician_only=True,
        ),
    ),
    "follow_up": (
        _rule(
            r"\bfollow[- ]?up\b|\bcome back\b|\breturn\b|\bsee you (?:in|next|back)\b"
            r"|\bcheck back\b",
            unless=r"\b(?:presents?|here (?:today )?for|today for|(?:coming|came) in for)\b",
        ),
    ),
    "plan": (
        _rule(r"\b(?:prescrib\w*|prescription|refill|refer\w*|schedul\w*)\b"),
        _rule(
            rf"{_NUM}\s*(?:mg|milligrams?|mcg|micrograms?|ml|milliliters?|tablets?|capsules?"
            r"|puffs?)\b|\btak(?:e|ing)\b[^.?!]*\b(?:tablets?|pills?|capsules?|dose)\b",
            unless=_PATIENT_MEDICATION,
        ),
        _rule(rf"\b(?:once|twice|{_NUM} times) (?:a|per) day\b|\bevery {_NUM} hours\b"),
        _rule(
            r"\border\w* (?:(?:a|an|some|the|you)\s+)?(?:\w+\s+)?(?:tests?|x-?rays?|blood"
            r"|labs?|scan|mri|ct|ultrasound|ecg|ekg|echo\w*|culture|swab|panel)"
        ),
        _rule(
            r"\b(?:i will|we will|i'll|we'll|i'm going to|we're going to|i'm gon na|we're gon na"
            r"|i wan na|we wan na|i want you to|i'd like you to|i'd like to|i recommend"
            r"|recommend\w*|you should|you need to|start you on|continue|increase|decrease"
            r"|stop taking|go ahead and|let's|(?:we|i) (?:may|might|could|should|would) (?:need to"
            r"|have to|want to|consider|try|start|order|refer))\b",
            # The patient's own intentions ("I'll struggle ... in my chest") are history.
            unless=r"\b(?:i've|i have been|my (?!assessment|plan|recommendation)\w+)",
        ),
        _rule(
            r"\b(?:drink|fluids|rest\b(?! of)|avoid\w*|ice it|elevate (?:it|your|the)|brace"
            r"|crutches|physical therapy)",
            unless=r"\b(?:my|i've|i have been|i had|i've been)\b",
        ),
    ),
    "assessment": (
        _rule(r"\b(?:looks like|sounds like|seems like)\b", unless=r"\?|\b(?:i feel|my)\b"),
        _rule(r"\bi think (?:you have|you've got|this is|it's|it is|that's|you're|we're)"),
        _rule(r"\b(?:diagnos\w*|impression|consistent with|differential|suspect\w*)\b"),
        _rule(r"\b(?:un)?likely\b"),
        _rule(rf"\bprobabl[ey]\b[^.?!]*\b(?:{_CONDITIONS})\b"),
        _rule(r"\b(?:infection|\w{3,}itis|pneumonia|sprain|strain)\b", clinician_only=True),
    ),
    "allergies": (_rule(r"\ballerg(?:ic|y|ies)\b"),),
    "medications": (_rule(rf"{_PATIENT_MEDICATION}|\bmedications?\b|\bmeds\b"),),
    "social_family": (
        _rule(
            r"\b(?:smok\w*|cigarettes?|alcohol|drink(?:s|ing)? (?:beer|wine|alcohol)|beers?"
            r"|wine|drugs|married|divorced|my (?:wife|husband|kids|children|son|daughter)"
            r"|family history|(?:my|your) (?:mom|mother|dad|father|sister|brother|grand\w+)"
            r"|i work|work as|job|retired)\b"
        ),
    ),
    "past_history": (
        _rule(
            r"\b(?:history of|surger(?:y|ies)|operation|diagnosed with|years ago|in the past"
            r"|when i was|used to have|had an? \w+ (?:before|years))\b"
        ),
    ),
    "history": (
        _rule(
            r"\b(?:pain\w*|hurts?|hurting|ache|aches|aching|cough\w*|fevers?|feverish"
            r"|headaches?|nause\w*|vomit\w*|diarrh\w*|dizz\w*|tired|fatigue\w*|short(?:ness)? of"
            r" breath|breath\w*|sore|chills|sweats?|bloat\w*|lightheaded|numb\w*|tingl\w*|itch\w*"
            r"|rash|swell\w*|swollen|cramp\w*|bleed\w*|congest\w*|runny|sneez\w*|wheez\w*"
            r"|sleep\w*|appetite|weight (?:gain|loss)|symptoms?|stiff\w*|weak\w*|anxi\w*"
            r"|depress\w*|stress\w*|injur\w*|twist\w*)\b"
        ),
        _rule(
            rf"\bsince\b|\bfor (?:a|an|the past|a few|a couple(?: of)?|several|{_NUM})"
            r" (?:hours?|days?|weeks?|months?|years?)\b|\bstarted\b|\bbegan\b|\bago\b"
            r"|\byesterday\b|\blast (?:night|week|month|year)\b"
        ),
        _rule(r"\b(?:i have|i've been|i've had|i had|my)\b"),
        _rule(r"\b(?:denies|never (?:had|been|smoked)|no history|year-old|presents?)\b"),
    ),
}


def kind_of(sentence: str, voice: Voice | None = None) -> FactKind | None:
    """The kind of fact a sentence states, or None when no rule matches. ``voice`` is who
    speaks when the transcript says so (None: unknown)."""
    for kind in KIND_PRIORITY:
        if any(rule.matches(sentence, voice) for rule in RULES[kind]):
            return kind
    return None
