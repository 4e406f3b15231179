"""How well does the verifier catch wrong note sentences, and leave right ones alone?

Scores the ``unsupported`` flag on the labelled sentences of ``verifier_cases`` (built from
ACI-Bench TRAIN by default): recall per error kind, precision, and the share of correct
sentences flagged (false flags). ``clinscribe eval verifier`` prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from clinscribe.evaluation.aci_bench import Encounter, dialogue_to_utterances
from clinscribe.evaluation.verifier_cases import CORRECT_KINDS, ERROR_KINDS, Case, build_cases
from clinscribe.notes.evidence import check_sentence
from clinscribe.notes.model import NoteSentence


@dataclass(frozen=True)
class KindScore:
    kind: str
    cases: int
    flagged: int
    share: float  # flagged / cases: recall for an error kind, false flags for a correct one


@dataclass(frozen=True)
class VerifierEvalResult:
    source: str
    cases: int
    correct: int
    errors: int
    precision: float  # flagged sentences that are planted errors
    recall: float  # planted errors flagged
    false_flag_rate: float  # correct sentences flagged
    by_kind: tuple[KindScore, ...]
    ms_per_sentence: float


# --- scoring ----------------------------------------------------------------------------------
def flagged(case: Case, transcript: dict[str, str]) -> bool:
    """Whether the verifier marks the case's sentence ``unsupported``."""
    return "unsupported" in check_sentence(NoteSentence(case.text, list(case.evidence)), transcript)


def score(encounters: Sequence[Encounter]) -> list[tuple[Case, bool]]:
    """Every case built from ``encounters``, with whether the verifier flagged it."""
    cases = build_cases(encounters)
    transcripts = {
        e.encounter_id: {u.id: u.text for u in dialogue_to_utterances(e.dialogue)}
        for e in encounters
    }
    return [(case, flagged(case, transcripts[case.encounter_id])) for case in cases]


def evaluate(encounters: Sequence[Encounter], source: str = "train") -> VerifierEvalResult:
    """Build the set from ``encounters`` and score the verifier's ``unsupported`` flag on it."""
    check_sentence(NoteSentence("Warm-up.", ["u1"]), {"u1": "Warm up."})  # loads the lexicons
    started = time.perf_counter()
    results = score(encounters)
    elapsed = time.perf_counter() - started
    planted = [hit for case, hit in results if case.planted]
    correct = [hit for case, hit in results if not case.planted]
    true_positives, false_positives = sum(planted), sum(correct)
    by_kind = tuple(
        KindScore(kind, len(hits), sum(hits), _ratio(sum(hits), len(hits)))
        for kind in (*ERROR_KINDS, *CORRECT_KINDS)
        if (hits := [hit for case, hit in results if case.kind == kind])
    )
    return VerifierEvalResult(
        source=source,
        cases=len(results),
        correct=len(correct),
        errors=len(planted),
        precision=_ratio(true_positives, true_positives + false_positives),
        recall=_ratio(true_positives, len(planted)),
        false_flag_rate=_ratio(false_positives, len(correct)),
        by_kind=by_kind,
        ms_per_sentence=1000 * elapsed / max(len(results), 1),
    )


def misses(encounters: Sequence[Encounter]) -> Iterator[tuple[Case, bool]]:
    """Cases the verifier gets wrong (missed errors and false flags), for inspection."""
    for case, hit in score(encounters):
        if hit != case.planted:
            yield case, hit


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
