"""Omissions: clinically salient utterances that no note sentence cites.

A note can be true in every sentence and still leave out the new medicine or the blood pressure.
Every utterance no sentence cites is read for what a clinician would want in the note, in this
order of salience (an utterance is listed once, under its most salient kind):

- ``medication``  a drug name (the drug dictionary of ``clinical_terms``);
- ``vital``       a number with a unit (38.2 degrees, 40 mg, 128/82) or a vital sign with a number;
- ``diagnosis``   a listed diagnosis ("hypertension", "high blood pressure", "pneumonia");
- ``symptom``     a listed symptom or sign ("chest pain", "short of breath", "swelling");
- ``plan``        an order or plan ("prescribe", "refer", "x-ray", "follow up", "start you on").

An omission holds the utterance id, the kind and a fixed reason, never transcript text: the API
shows the utterance by id, and the note stays free of text it did not choose to quote.
"""

from __future__ import annotations

import re

from clinscribe.notes.clinical_findings import findings_in
from clinscribe.notes.clinical_terms import content_stems, drugs_in, implied_units
from clinscribe.notes.model import NoteDraft, Utterance
from clinscribe.notes.quantities import numbers_in, quantities

REASONS: dict[str, str] = {
    "medication": "mentions a medication that no sentence cites",
    "vital": "states a measurement or vital sign that no sentence cites",
    "diagnosis": "names a diagnosis that no sentence cites",
    "symptom": "mentions a symptom or finding that no sentence cites",
    "plan": "gives a plan or order that no sentence cites",
}
_PLAN = re.compile(
    r"\b(?:prescrib\w*|prescription|refill\w*|refer\w*|order\w*|schedul\w*|follow[- ]?up"
    r"|come back|start (?:you|him|her|them) on|increase|decrease|stop taking|discontinue"
    r"|x-?rays?|mri|ct scan|cat scan|ultrasound|blood work|labs?|echo\w*|ekg|ecg|biopsy"
    r"|surgery|physical therapy|injection|vaccine|referral|appointment)\b"
)
_NON_MEASURES: frozenset[str] = frozenset(
    {"times", "second", "minute", "hour", "day", "week", "month", "year"}
)


def find_omissions(draft: NoteDraft, utterances: list[Utterance]) -> list[dict[str, object]]:
    """Salient utterances that no sentence of ``draft`` cites, in transcript order."""
    cited = {uid for section in draft.sections for s in section.sentences for uid in s.evidence}
    omissions: list[dict[str, object]] = []
    for utterance in utterances:
        if utterance.id in cited:
            continue
        kind = salient_kind(utterance.text)
        if kind is not None:
            omissions.append({"utterance_id": utterance.id, "kind": kind, "reason": REASONS[kind]})
    return omissions


def salient_kind(text: str) -> str | None:
    """The most salient kind of clinical content ``text`` holds, or None for small talk."""
    if drugs_in(text):
        return "medication"
    measured = {unit for _, unit in quantities(text)} - _NON_MEASURES
    if measured or (implied_units(text) and numbers_in(text, skip_lone_one=True)):
        return "vital"
    found = {finding.kind for _, _, finding in findings_in(content_stems(text))}
    for kind in ("diagnosis", "symptom"):
        if kind in found:
            return kind
    if _PLAN.search(text.lower()):
        return "plan"
    return None
