"""Guess who is the doctor and who is the patient in a transcript, from what they say.

Roles are a heuristic: they are shown to the clinician with every utterance and can be corrected
there, so a guess is only made when the evidence is clear; otherwise the role stays ``unknown``.
The input ``speaker`` field is ignored (roles are derived from ``speaker_id`` and text alone) and
text and times are never changed.

With diarization (segments carry the provider's ``speaker_id``) a whole speaker is judged at once:
every segment earns one point per cue family it matches (doctor: a question, clinician vocabulary,
addressing the other person; patient: first-person symptom talk, a yes/no answer). A speaker's net
score is doctor points minus patient points. The two speakers who talk longest are the main ones;
the one with the higher net score is the doctor, the other the patient, anyone else ``other``. If
the two net scores differ by less than ``MIN_MARGIN`` points, or by less than
``MIN_RELATIVE_MARGIN`` of all the points the two earned, the call is too close: all stay
``unknown``. A single speaker also stays ``unknown`` (nothing to contrast them with).

Without diarization each segment is judged alone, and only on strong cues (``STRONG_DOCTOR``,
``STRONG_PATIENT``); a segment matching both, or neither, stays ``unknown``. The same per-segment
rules apply to the odd segment without a ``speaker_id`` in an otherwise diarized transcript.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

from clinscribe.notes.model import Speaker
from clinscribe.providers.stt.base import Segment

_I = re.IGNORECASE

# One stray cue must not decide a consultation: the doctor's net score has to beat the patient's
# by at least 2 points, and by at least 10 % of both speakers' cue points together so that long,
# noisy transcripts need proportionally clearer evidence.
MIN_MARGIN = 2
MIN_RELATIVE_MARGIN = 0.10

# Clinicians lead the conversation, so they ask most questions: a trailing "?" (when the provider
# punctuates) or an opening interrogative (when it does not), including the terse "Any allergies".
QUESTION = (
    re.compile(r"\?\s*$"),
    re.compile(
        r"^\W*(?:what|how|when|where|why|which|who|do|does|did|have|has|are|is|can|could|any)\b",
        _I,
    ),
)
# Words a patient rarely says about themselves: prescribing, doses, examination, readings given
# to the patient as statements, and the clinician's plan in the first person.
CLINICIAN_VOCABULARY = (
    re.compile(r"\bprescrib\w*|\b(?:milligrams?|micrograms?|mg)\b|\bexamin\w*", _I),
    re.compile(r"\byour (?:temperature|blood pressure|pulse|heart rate|oxygen|weight)\b", _I),
    re.compile(r"\b(?:I will|I'll|we will|we'll|let me|I'd like to|I would like to)\b", _I),
    re.compile(r"\bfollow[- ]?up\b", _I),
)
# The clinician talks *to* the patient about the patient's body; "thank you" is politeness that
# patients use as much as anyone, so it does not count.
SECOND_PERSON = (re.compile(r"\b(?<!thank )you\b|\byour\b", _I),)
# Patients talk about themselves: what they have, how long, where it hurts.
FIRST_PERSON_SYMPTOMS = (
    re.compile(r"\bI(?: have|'ve)(?: had| been)?\b|\bmy\b|\bit hurts\b|\bsince\b", _I),
    re.compile(r"\bI(?:'m| am) (?:feeling|in pain)\b|\bI feel\b", _I),
)
# Answers to the clinician's questions usually open with yes or no.
ANSWER = (re.compile(r"^\W*(?:yes|yeah|no|nope)\b", _I),)

DOCTOR_CUES = (QUESTION, CLINICIAN_VOCABULARY, SECOND_PERSON)
PATIENT_CUES = (FIRST_PERSON_SYMPTOMS, ANSWER)

# Strong cues label a single segment without diarization, so each must be something the other
# role almost never says.
STRONG_DOCTOR = (
    # A question about the patient ("Have you had...", "Are you taking...", "What brings you in"),
    # but not the patient's "Do you think it's serious?".
    re.compile(
        r"\b(?:have|has|had|do|did|are|were|is|was)\s+(?:you|your)\b(?!\s+think)[^?]*\?", _I
    ),
    re.compile(r"^\W*any\b[^?]*\?|\bwhat brings you\b|\bhow long (?:have|has)\b[^?]*\?", _I),
    # Readings read out to the patient: "Your temperature is 38.2".
    re.compile(
        r"\byour (?:temperature|blood pressure|pulse|heart rate|oxygen \w+|weight)\b"
        r"[^.?!]*\b(?:is|was|are)\b",
        _I,
    ),
    # The clinician's own plan: "I will prescribe", "I'd like to examine", "let me listen".
    re.compile(r"\b(?:I will|I'll|I am going to|I'm going to|we'll|we will) prescribe\b", _I),
    re.compile(
        r"\b(?:I'd like to|I would like to|let me) (?:examine|listen to|have a look at)\b", _I
    ),
)
STRONG_PATIENT = (
    # "I have had a cough", "I've been coughing" -- but not the doctor's "I have had a look".
    re.compile(r"\bI(?: have|'ve) (?:had|been)\b(?! a (?:look|chance|word))", _I),
    # "My knee hurts", "My cough started three days ago".
    re.compile(
        r"\bmy (?:\w+ ){0,2}?(?:hurts?|aches?|started|began|is (?:sore|swollen|painful|itchy))\b",
        _I,
    ),
    re.compile(r"\bit hurts\b|\bI(?:'m| am) in pain\b|\bI feel (?:sick|dizzy|unwell|awful)\b", _I),
)


def assign_roles(segments: list[Segment]) -> list[Segment]:
    """Return copies of ``segments`` with ``speaker`` set to the guessed role (see module doc)."""
    if any(segment.speaker_id is not None for segment in segments):
        roles = _roles_by_speaker_id(segments)
        return [
            replace(
                segment,
                speaker=roles.get(segment.speaker_id, "unknown")
                if segment.speaker_id is not None
                else _role_of_segment(segment.text),
            )
            for segment in segments
        ]
    return [replace(segment, speaker=_role_of_segment(segment.text)) for segment in segments]


def _points(text: str, families: tuple[tuple[re.Pattern[str], ...], ...]) -> int:
    return sum(any(pattern.search(text) for pattern in family) for family in families)


def _roles_by_speaker_id(segments: list[Segment]) -> dict[str, Speaker]:
    talk_time: dict[str, float] = defaultdict(float)
    doctor_points: dict[str, int] = defaultdict(int)
    patient_points: dict[str, int] = defaultdict(int)
    for segment in segments:
        if segment.speaker_id is None:
            continue
        talk_time[segment.speaker_id] += max(segment.end - segment.start, 0.0)
        doctor_points[segment.speaker_id] += _points(segment.text, DOCTOR_CUES)
        patient_points[segment.speaker_id] += _points(segment.text, PATIENT_CUES)
    if len(talk_time) < 2:
        return {}
    # Longest talkers first; dicts keep first-appearance order, so sorted() breaks ties by it.
    first, second = sorted(talk_time, key=lambda sid: -talk_time[sid])[:2]
    net = {sid: doctor_points[sid] - patient_points[sid] for sid in (first, second)}
    doctor, patient = (first, second) if net[first] >= net[second] else (second, first)
    margin = net[doctor] - net[patient]
    total = sum(doctor_points[sid] + patient_points[sid] for sid in (first, second))
    if margin < MIN_MARGIN or margin < MIN_RELATIVE_MARGIN * total:
        return {}
    roles: dict[str, Speaker] = dict.fromkeys(talk_time, "other")
    roles[doctor] = "doctor"
    roles[patient] = "patient"
    return roles


def _role_of_segment(text: str) -> Speaker:
    doctor = any(pattern.search(text) for pattern in STRONG_DOCTOR)
    patient = any(pattern.search(text) for pattern in STRONG_PATIENT)
    if doctor and not patient:
        return "doctor"
    if patient and not doctor:
        return "patient"
    return "unknown"
