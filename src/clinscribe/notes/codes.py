"""ICD-10-CM code suggestions for the problems named in a note's assessment and plan.

Codes and their official descriptions come from the ``simple-icd-10-cm`` package (the CMS
code set, offline); the synonym map below says which words name which code. Every code is a
*suggestion* for the clinician to accept or reject; nothing is billed from it. A problem
mentioned only as negated or to be ruled out ("no signs of pneumonia", "rule out dengue") is
not suggested.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from clinscribe.notes.model import NoteDraft, NoteTemplate

# code -> phrases naming it (lowercase; matched as whole words). More specific phrases first
# within a condition family, since the first matching code of a family wins.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "E11.9": ("type 2 diabetes", "type two diabetes", "diabetes mellitus type 2", "t2dm"),
    "E10.9": ("type 1 diabetes", "type one diabetes"),
    "R73.03": ("prediabetes", "pre-diabetes", "borderline diabetes"),
    "I10": ("hypertension", "high blood pressure", "essential hypertension"),
    "E78.5": ("hyperlipidemia", "high cholesterol", "dyslipidemia"),
    "E66.9": ("obesity",),
    "E03.9": ("hypothyroidism", "underactive thyroid"),
    "E05.90": ("hyperthyroidism", "overactive thyroid"),
    "E55.9": ("vitamin d deficiency",),
    "E53.8": ("vitamin b12 deficiency", "b12 deficiency"),
    "D50.9": ("iron deficiency anemia", "iron deficiency anaemia"),
    "D64.9": ("anemia", "anaemia"),
    "J45.909": ("asthma",),
    "J44.9": ("copd", "chronic obstructive pulmonary disease"),
    "J20.9": ("acute bronchitis", "bronchitis"),
    "J18.9": ("pneumonia",),
    "J22": ("chest infection", "lower respiratory tract infection",
            "lower respiratory infection"),
    "J06.9": ("upper respiratory infection", "upper respiratory tract infection", "uri",
              "urti", "common cold"),
    "J02.9": ("pharyngitis", "sore throat"),
    "J03.90": ("tonsillitis",),
    "J01.90": ("acute sinusitis", "sinusitis"),
    "J30.9": ("allergic rhinitis", "hay fever"),
    "J11.1": ("influenza", "flu"),
    "U07.1": ("covid-19", "covid"),
    "A90": ("dengue",),
    "A01.00": ("typhoid",),
    "B54": ("malaria",),
    "A15.0": ("pulmonary tuberculosis", "tuberculosis"),
    "A09": ("gastroenteritis",),
    "K21.9": ("gerd", "acid reflux", "gastroesophageal reflux"),
    "K29.70": ("gastritis",),
    "K59.00": ("constipation",),
    "N39.0": ("urinary tract infection", "uti"),
    "N20.0": ("kidney stone", "renal calculus", "nephrolithiasis"),
    "N18.9": ("chronic kidney disease", "ckd"),
    "I50.9": ("heart failure",),
    "I48.91": ("atrial fibrillation", "afib"),
    "I20.9": ("angina",),
    "G43.909": ("migraine",),
    "G44.209": ("tension headache", "tension-type headache"),
    "G47.00": ("insomnia",),
    "F32.A": ("depression",),
    "F41.9": ("anxiety",),
    "M17.9": ("osteoarthritis of the knee", "knee osteoarthritis"),
    "M19.90": ("osteoarthritis",),
    "M54.50": ("low back pain", "lower back pain"),
    "M10.9": ("gout",),
    "H66.90": ("otitis media", "ear infection"),
    "H10.9": ("conjunctivitis", "pink eye"),
    "L30.9": ("dermatitis", "eczema"),
    "L40.9": ("psoriasis",),
    "B35.9": ("tinea", "ringworm", "fungal skin infection"),
    "B86": ("scabies",),
    "B01.9": ("chickenpox", "varicella"),
}  # fmt: skip

# A condition family: once its first (most specific) code matched, the others are skipped.
FAMILIES: tuple[tuple[str, ...], ...] = (("D50.9", "D64.9"), ("M17.9", "M19.90"))
_NEGATION = re.compile(
    r"\b(?:no|not|without|denies|negative for|rule out|ruled out|r/o|unlikely|doubt)\b"
    r"(?:\W+\w+){0,4}\W*$"
)


@lru_cache(maxsize=1)
def _code_set() -> Any:
    # Importing the package parses the whole code set (~2 s): only when a note needs it.
    import simple_icd_10_cm

    return simple_icd_10_cm


def describe(code: str) -> str:
    """The official description of an ICD-10-CM code."""
    return str(_code_set().get_description(code))


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    return [
        (code, re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + r")\b"))
        for code, phrases in SYNONYMS.items()
    ]


def suggest_codes(
    draft: NoteDraft, template: NoteTemplate, previous: list[dict[str, object]] | None = None
) -> list[dict[str, object]]:
    """Codes for problems named in the sections that collect the assessment or the plan
    (a spoken plan often names the diagnosis: "it's a chest infection; start amoxicillin").

    ``previous`` (the codes of the version this one replaces) keeps a clinician's decision
    (``accepted`` / ``rejected``) on a code that is still suggested.
    """
    decided = {c["code"]: c["status"] for c in previous or [] if c.get("status") != "suggested"}
    assessment_keys = {s.key for s in template.sections if {"assessment", "plan"} & set(s.collects)}
    found: dict[str, dict[str, object]] = {}
    for section in draft.sections:
        if section.key not in assessment_keys:
            continue
        for sentence in section.sentences:
            text = sentence.text.lower()
            for code, pattern in _patterns():
                match = pattern.search(text)
                if match is None or _NEGATION.search(text[: match.start()]):
                    continue
                if code not in found and not _family_taken(code, found):
                    found[code] = {
                        "code": code,
                        "description": describe(code),
                        "evidence": list(sentence.evidence),
                        "status": decided.get(code, "suggested"),
                    }
    return list(found.values())


def _family_taken(code: str, found: dict[str, dict[str, object]]) -> bool:
    for family in FAMILIES:
        if code in family:
            return any(other in found for other in family if other != code)
    return False
