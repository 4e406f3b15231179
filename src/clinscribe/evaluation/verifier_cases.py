"""A labelled test set for the note verifier, built deterministically from ACI-Bench dialogues.

ACI-Bench (Yim et al., Sci Data 2023, CC BY 4.0) is read from ``../shared/data``, never copied.
Every case is a note sentence with the utterance ids it cites:

- correct: transcript sentences as said (``verbatim``), faithful rewordings of them
  (``reworded_*``: numbers in digits or words, "mg" for "milligrams", generic for brand names,
  "hypertension" for "high blood pressure", "Denies X." for "no X", third person for first,
  "Lisinopril 40 mg." for a sentence that gives that dose, "Reports X." for "I have X") and the
  extractive writer's ``Asked "..." — answered "..."`` pairs (``question_answer``);
- planted errors, each from a transcript sentence that has the feature: a changed dose, a
  changed number, a changed unit, a flipped negation, a flipped uncertainty, a swapped drug, an
  invented drug, an invented finding.

The builder finds its candidates with its own small word lists, not the verifier's lexicons, so
the set does not simply mirror the checks. A planted number is one the evidence does not hold
(a changed number that equals another number in the evidence cannot be caught by any check that
looks at numbers; the changed-dose cases test exactly that, with swapped doses).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from clinscribe.evaluation.aci_bench import Encounter, dialogue_to_utterances
from clinscribe.notes.model import Utterance

ERROR_KINDS: tuple[str, ...] = (
    "changed_dose", "changed_number", "changed_unit", "flipped_negation", "flipped_uncertainty",
    "swapped_drug", "invented_drug", "invented_finding",
)  # fmt: skip
CORRECT_KINDS: tuple[str, ...] = (
    "verbatim", "question_answer", "reworded_number", "reworded_unit", "reworded_drug_name",
    "reworded_synonym", "reworded_denies", "reworded_third_person", "reworded_medication_line",
    "reworded_reports",
)  # fmt: skip
# At most this many cases of each kind; per encounter at most one of each error kind and
# ``CORRECT_PER_ENCOUNTER`` of each correct kind, so that no one consultation dominates.
MAX_PER_KIND = 30
MAX_CORRECT_PER_KIND = 60
CORRECT_PER_ENCOUNTER = 2
MAX_WORDS = 40  # longer run-on transcript "sentences" make poor test sentences

# fmt: off
# Brand -> generic: a rewording that keeps the drug. Swaps pick a drug of another generic.
BRANDS: dict[str, str] = {
    "tylenol": "acetaminophen", "motrin": "ibuprofen", "advil": "ibuprofen", "aleve": "naproxen",
    "norvasc": "amlodipine", "lasix": "furosemide", "protonix": "pantoprazole",
    "prozac": "fluoxetine", "crestor": "rosuvastatin", "lipitor": "atorvastatin",
    "zyrtec": "cetirizine", "flexeril": "cyclobenzaprine", "singulair": "montelukast",
    "keppra": "levetiracetam", "flovent": "fluticasone", "mobic": "meloxicam",
    "ultram": "tramadol", "synthroid": "levothyroxine", "coreg": "carvedilol",
    "toprol": "metoprolol", "glucophage": "metformin", "zestril": "lisinopril",
}
GENERICS: tuple[str, ...] = (
    "lisinopril", "metformin", "ibuprofen", "albuterol", "meloxicam", "doxycycline",
    "aspirin", "prednisone", "insulin", "hydrochlorothiazide", "methotrexate",
    "spironolactone", "gabapentin", "carvedilol", "clindamycin", "metoprolol", "allopurinol",
    "omeprazole", "amoxicillin", "atorvastatin", "amlodipine", "losartan", "tramadol",
    "naproxen", "levothyroxine", "furosemide", "warfarin", "sertraline", "atenolol",
)
SWAP_DRUGS: tuple[str, ...] = (
    "warfarin", "sertraline", "atenolol", "omeprazole", "amoxicillin", "gabapentin",
    "prednisone", "metformin",
)
# Findings the builder recognises, and what it swaps each for.
FINDING_SWAPS: dict[str, str] = {
    "knee": "hip", "hip": "shoulder", "shoulder": "knee", "ankle": "wrist", "wrist": "ankle",
    "back": "neck", "neck": "back", "elbow": "knee", "foot": "hand", "hand": "foot",
    "cough": "fever", "fever": "rash", "headache": "chest pain", "nausea": "diarrhea",
    "vomiting": "constipation", "diarrhea": "vomiting", "swelling": "bruising", "rash": "cough",
    "dizziness": "palpitations", "numbness": "weakness", "chest pain": "headache",
    "shortness of breath": "wheezing", "depression": "diabetes", "diabetes": "asthma",
    "hypertension": "diabetes", "asthma": "pneumonia", "arthritis": "gout",
    "pneumonia": "bronchitis", "bronchitis": "pneumonia",
}
SYNONYMS: dict[str, str] = {
    "high blood pressure": "hypertension", "shortness of breath": "dyspnea",
    "short of breath": "dyspnea", "heart attack": "myocardial infarction",
    "throwing up": "vomiting", "throw up": "vomit", "belly": "abdomen", "stomach": "abdomen",
}
NUMBER_NAMES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)
UNIT_SWAPS: dict[str, str] = {
    "milligrams": "micrograms", "milligram": "microgram", "mg": "mcg", "weeks": "months",
    "week": "month", "days": "weeks", "day": "week", "months": "years", "month": "year",
    "years": "months", "pounds": "kilograms", "units": "milligrams",
}
HEDGES: tuple[str, ...] = (
    "could be", "might be", "may be", "possibly", "probably", "maybe", "might", "likely",
    "possible",
)
# fmt: on
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER = re.compile(rf"\b(?:\d+(?:\.\d+)?|{'|'.join((*NUMBER_NAMES, *_TENS))})\b")
_DOSE = re.compile(r"(?<![\d,.])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(?:milligrams?|mg)\b")
_UNIT = re.compile(rf"\b({_NUMBER.pattern[2:-2]})\s+({'|'.join(UNIT_SWAPS)})\b")
_NEGATION = re.compile(r"\b(?:no|not|never|denies|without)\b|n't\b")
_FINDING = re.compile(rf"\b({'|'.join(sorted(FINDING_SWAPS, key=len, reverse=True))})\b")
_DRUG = re.compile(rf"\b({'|'.join((*BRANDS, *GENERICS))})\b")
_HEDGE = re.compile(rf"\b(?:{'|'.join(HEDGES)})\b")
# "I have had a cough" and the same said with a negation added.
_NEGATED_FORMS: dict[str, str] = {
    "'ve been having": "have not been having", "have been having": "have not been having",
    "'ve had": "have not had", "have had": "have not had", "have been": "have not been",
    "have": "do n't have", "had": "did n't have", "get": "do n't get", "feel": "do n't feel",
}  # fmt: skip
_AFFIRMED = re.compile(rf"\bi ({'|'.join(_NEGATED_FORMS)})\b")
_YES_NO = re.compile(r"^(?:yes|yeah|yep|no|nope)\b")


@dataclass(frozen=True)
class Case:
    encounter_id: str
    kind: str  # one of CORRECT_KINDS or ERROR_KINDS
    text: str
    evidence: tuple[str, ...]

    @property
    def planted(self) -> bool:
        return self.kind in ERROR_KINDS


@dataclass(frozen=True)
class _Sentence:
    text: str  # tidied, as a note would hold it
    uid: str
    next_uid: str | None  # the utterance after this one


# --- building the set -------------------------------------------------------------------------
def build_cases(encounters: Sequence[Encounter]) -> list[Case]:
    """The labelled cases, in encounter order within each kind."""
    pools: dict[str, list[Case]] = {kind: [] for kind in (*CORRECT_KINDS, *ERROR_KINDS)}
    for encounter in encounters:
        utterances = dialogue_to_utterances(encounter.dialogue)
        texts = {u.id: u.text for u in utterances}
        taken: Counter[str] = Counter()
        for sentence in _sentences(utterances):
            for kind, text, evidence in _variants(sentence, texts):
                correct = kind in CORRECT_KINDS
                room = MAX_CORRECT_PER_KIND if correct else MAX_PER_KIND
                if taken[kind] >= (CORRECT_PER_ENCOUNTER if correct else 1):
                    continue
                if len(pools[kind]) >= room:
                    continue
                taken[kind] += 1
                pools[kind].append(Case(encounter.encounter_id, kind, text, evidence))
    return [case for kind in pools for case in pools[kind]]


def _sentences(utterances: list[Utterance]) -> Iterator[_Sentence]:
    for i, utterance in enumerate(utterances):
        next_uid = utterances[i + 1].id if i + 1 < len(utterances) else None
        for part in re.split(r"(?<=[.?!])\s+", utterance.text):
            text = _tidy(part)
            if text and 4 <= len(text.split()) <= MAX_WORDS:
                yield _Sentence(text, utterance.id, next_uid)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([,.?!;:])", r"\1", " ".join(text.split()))
    text = re.sub(r"^(?:(?:um|uh|so|okay|and|well|alright|yeah),?\s+)+", "", text, flags=re.I)
    if not text or not re.search(r"[a-z]", text, re.I):
        return ""
    if text[-1] not in ".?!":
        text += "."
    return text[0].upper() + text[1:]


def _variants(
    sentence: _Sentence, texts: dict[str, str]
) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(kind, note sentence, evidence ids) built from one transcript sentence."""
    text, own = sentence.text, (sentence.uid,)
    lower = text.lower()
    if text.endswith("?"):
        answer = texts.get(sentence.next_uid or "", "")
        if _YES_NO.match(answer) and len(answer.split()) <= 6 and sentence.next_uid:
            qa = f'Asked "{text}" \u2014 answered "{_tidy(answer)}"'
            yield "question_answer", qa, (sentence.uid, sentence.next_uid)
        return
    clinical = any(p.search(lower) for p in (_NUMBER, _DRUG, _FINDING, _NEGATION, _HEDGE))
    if not clinical:
        return
    yield "verbatim", text, own
    evidence = texts[sentence.uid].lower()
    for kind, build in _REWORDINGS:  # every rewording that applies, one case each
        reworded = build(text)
        if reworded and reworded != text:
            yield kind, reworded, own
    for kind, plant in _PLANTS.items():
        planted = plant(text, evidence)
        if planted and planted.lower() != lower:
            yield kind, planted, own


# Rewordings: each returns the sentence reworded, or itself when it does not apply.
def _digits_for_words(text: str) -> str:
    """The first number word that stands alone ("three days", not "three hundred") as digits."""
    words = text.split(" ")
    spoken = {*NUMBER_NAMES, *_TENS, "hundred", "thousand", "point"}
    for i, word in enumerate(words):
        bare = word.lower().strip(",.")
        neighbours = {w.lower().strip(",.") for w in words[max(i - 1, 0) : i + 2]} - {bare}
        if bare in NUMBER_NAMES[2:] and not neighbours & spoken:
            words[i] = word.lower().replace(bare, str(NUMBER_NAMES.index(bare)))
            return " ".join(words)
    return text


def _words_for_digits(text: str) -> str:
    return re.sub(
        r"(?<![.,\d/])\b([2-9]|1\d|20)\b(?![.,\d/])",
        lambda m: NUMBER_NAMES[int(m[1])],
        text,
        count=1,
    )


def _short_units(text: str) -> str:
    text = re.sub(r"(\d)\s+milligrams?\b", r"\1 mg", text)
    return re.sub(r"(\d)\s+percent\b", r"\1%", text)


def _generic_names(text: str) -> str:
    pattern = rf"\b({'|'.join(BRANDS)})\b"
    return re.sub(pattern, lambda m: BRANDS[m[1].lower()], text, flags=re.I)


def _synonyms(text: str) -> str:
    pattern = rf"\b({'|'.join(SYNONYMS)})\b"
    return re.sub(pattern, lambda m: SYNONYMS[m[1].lower()], text, flags=re.I)


def _denies(text: str) -> str:
    found = re.search(r"\b(?:no|not any|n't have any|n't have)\s+(?:\w+\s+)?(\w+)", text.lower())
    if found and _FINDING.fullmatch(found[1]):
        return f"Denies {found[1]}."
    return ""


def _third_person(text: str) -> str:
    swaps = {"i": "the patient", "my": "the patient's", "i'm": "the patient is"}
    reworded = re.sub(r"\b(i'm|my|i)\b(?!')", lambda m: swaps[m[1].lower()], text, flags=re.I)
    return _tidy(reworded) if reworded != text else text


def _medication_line(text: str) -> str:
    """ "Lisinopril 40 mg." from "... increase your lisinopril to 40 milligrams a day ..."."""
    found = re.search(rf"{_DRUG.pattern}(?:\W+\w+){{0,4}}?\W+{_DOSE.pattern}", text.lower())
    return f"{found[1].capitalize()} {found[2]} mg." if found else ""


def _reports(text: str) -> str:
    """ "Reports swelling." from "... i have a little bit of swelling ..."."""
    lower = text.lower()
    affirmed = _AFFIRMED.search(lower)
    if not affirmed or _NEGATION.search(lower) or _HEDGE.search(lower):
        return ""
    finding = _FINDING.search(lower, affirmed.end())
    return f"Reports {finding[1]}." if finding else ""


def _numbers_reworded(text: str) -> str:
    reworded = _digits_for_words(text)
    return reworded if reworded != text else _words_for_digits(text)


_REWORDINGS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("reworded_number", _numbers_reworded), ("reworded_unit", _short_units),
    ("reworded_drug_name", _generic_names), ("reworded_synonym", _synonyms),
    ("reworded_denies", _denies), ("reworded_third_person", _third_person),
    ("reworded_medication_line", _medication_line), ("reworded_reports", _reports),
)  # fmt: skip


# Planted errors: each returns the altered sentence, or "" when the sentence lacks the feature.
def _changed_dose(text: str, evidence: str) -> str:
    dose = _DOSE.search(text)
    if not dose or not _DRUG.search(text.lower()):
        return ""
    others = [m[1] for m in _DOSE.finditer(evidence) if m[1] != dose[1]]
    new = others[0] if others else _format(float(dose[1].replace(",", "")) * 2)
    return text[: dose.start(1)] + new + text[dose.end(1) :]


def _changed_number(text: str, evidence: str) -> str:
    number = _NUMBER.search(text)
    if not number or _DOSE.search(text) or number[0].lower() == "one":
        return ""
    said = {m[0].lower() for m in _NUMBER.finditer(evidence)}
    word = number[0].lower()
    value = float(word) if word[0].isdigit() else float(_word_value(word))
    for candidate in (value + 2, value + 3, value * 2 + 5):
        new = _format(candidate)
        spoken = NUMBER_NAMES[int(candidate)] if candidate < len(NUMBER_NAMES) else new
        if new not in said and spoken not in said:
            written = new if word[0].isdigit() else spoken
            return text[: number.start()] + written + text[number.end() :]
    return ""


def _changed_unit(text: str, evidence: str) -> str:
    unit = _UNIT.search(text.lower())
    if not unit or UNIT_SWAPS[unit[2]] in evidence:
        return ""
    return text[: unit.start(2)] + UNIT_SWAPS[unit[2]] + text[unit.end(2) :]


def _flipped_negation(text: str, evidence: str) -> str:
    lower = text.lower()
    if _NEGATION.search(lower):
        near = re.search(rf"(?:{_NEGATION.pattern})(?:\W+\w+){{0,6}}?\W+{_FINDING.pattern}", lower)
        if not near:
            return ""
        flipped = re.sub(r"\s*\b(?:no|not|never|without)\b,?", "", text, flags=re.I)
        flipped = re.sub(
            r"\b(\w+) ?n't\b", lambda m: {"ca": "can", "wo": "will"}.get(m[1], m[1]), flipped
        )
        return _tidy(re.sub(r"\bdenies\b", "reports", flipped, flags=re.I))
    affirmed = _AFFIRMED.search(lower)
    if affirmed and _FINDING.search(lower[affirmed.end() :]):
        negated = f"i {_NEGATED_FORMS[affirmed[1]]}"
        return _tidy(text[: affirmed.start()] + negated + text[affirmed.end() :])
    return ""


def _flipped_uncertainty(text: str, evidence: str) -> str:
    lower = text.lower()
    if _HEDGE.search(lower) and _FINDING.search(lower):
        text = re.sub(r"\b(?:could|might|may) be\b", "is", text, flags=re.I)
        return _tidy(re.sub(rf"\s*\b(?:{'|'.join(HEDGES)})\b", "", text, flags=re.I))
    found = re.search(r"\b(?:you have|you've got|it's|this is) (?:an? )?", lower)
    if found and _FINDING.match(lower, found.end()):
        return text[: found.end()] + "possibly " + text[found.end() :]
    return ""


def _swapped_drug(text: str, evidence: str) -> str:
    drug = _DRUG.search(text.lower())
    if not drug:
        return ""
    generic = BRANDS.get(drug[1], drug[1])
    for new in SWAP_DRUGS:
        if new != generic and new not in evidence:
            return text[: drug.start()] + new + text[drug.end() :]
    return ""


def _invented_drug(text: str, evidence: str) -> str:
    if not _FINDING.search(text.lower()):
        return ""
    new = next(d for d in ("warfarin", "sertraline", "atenolol") if d not in evidence)
    return f"{text[:-1]}, and takes {new}."


def _invented_finding(text: str, evidence: str) -> str:
    found = _FINDING.search(text.lower())
    if not found or FINDING_SWAPS[found[1]] in evidence:
        return ""
    return text[: found.start()] + FINDING_SWAPS[found[1]] + text[found.end() :]


_PLANTS: dict[str, Callable[[str, str], str]] = {
    "changed_dose": _changed_dose, "changed_number": _changed_number,
    "changed_unit": _changed_unit, "flipped_negation": _flipped_negation,
    "flipped_uncertainty": _flipped_uncertainty, "swapped_drug": _swapped_drug,
    "invented_drug": _invented_drug, "invented_finding": _invented_finding,
}  # fmt: skip


def _word_value(word: str) -> int:
    if word in NUMBER_NAMES:
        return NUMBER_NAMES.index(word)
    return 20 + 10 * _TENS.index(word)


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"
