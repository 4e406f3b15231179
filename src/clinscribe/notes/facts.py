"""Facts read from a transcript, each a note line in the clinician's voice citing its speech.

Flow, per sentence in transcript order: a question is held until its answer (a yes/no answer
turns the pair into "Reports ..."/"Denies ..."); small talk and talk about the visit itself
are dropped; the rest is read for the reason for the visit, vital signs, allergies, medicines
and the problem under discussion, then sorted into a kind of fact (:mod:`kinds`) and put in
the third person (:mod:`person`). Every line is made of the speakers' words plus the template
words listed in :data:`TEMPLATE_WORDS`; numbers, units and drug names are copied as said.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from clinscribe.notes.kinds import kind_of
from clinscribe.notes.medications import Medication, medications_in
from clinscribe.notes.model import FactKind, Speaker, Utterance
from clinscribe.notes.negation import bears_on_what_follows, is_negated_sentence
from clinscribe.notes.person import (
    PERSON_WORDS,
    Pronouns,
    Voice,
    pronouns_from,
    third_person,
    written_out,
)
from clinscribe.notes.questions import QUESTION_WORDS, answered_question, is_clinical_question
from clinscribe.notes.spoken import Piece, clean_spoken, merge_ids, pieces, plain_words
from clinscribe.notes.spoken_findings import allergy_in, problem_in, visit_reason_in, vitals_in

# Every word a note line may hold that its cited utterances need not: the fixed lead-ins of
# the line templates and the third-person forms of :mod:`person`.
TEMPLATE_WORDS: frozenset[str] = (
    PERSON_WORDS | QUESTION_WORDS | {"chief", "complaint", "allergies", "medications", "plan"}
)


@dataclass(frozen=True)
class Fact:
    kind: FactKind
    text: str
    evidence: tuple[str, ...]


_ACKNOWLEDGEMENT = (
    r"okay|ok|mm-?hmm|uh-?huh|hmm+|sure|right|all right|alright|got it|i see|great|good"
    r"|perfect|fine|cool|you got it|wow|oh|nice|awesome|excellent|sounds good|that's good"
)
# Matched against the whole sentence, lowercased with punctuation removed.
SMALL_TALK: tuple[str, ...] = (
    rf"(?:(?:yes|yeah|yep|no|nope|nah|{_ACKNOWLEDGEMENT}|thank you|thanks)\s*)+",
    r"(?:hi|hello|hey|good (?:morning|afternoon|evening)|bye|goodbye)\b.{0,30}",
    r"(?:it's |it is )?(?:nice|good|great) to (?:see|meet) you.*",
    r"(?:thank you|thanks)\b.{0,30}",
    r".*\b(?:how are you|you're welcome|take care|have a (?:good|great|nice))\b.*",
)
# Talk about the visit itself, not about the patient: "let me take a look", "hey dragon, show
# me the x-ray" (a dictation command).
_ABOUT_THE_VISIT = re.compile(
    r"\b(?:let me|let's|i'm going to|i'm gon na|i'm just gon na|i wan na|i want to|i'd like to"
    r"|i'll|we'll|we're going to|we're gon na)\s+(?:just\s+|go ahead and\s+|quickly\s+)?"
    r"(?:take a (?:quick )?look|examine|do a (?:quick )?(?:physical )?exam|listen|check you"
    r"|go over|review|look at|talk about|ask you|pull up|see how)"
    r"|\bhey,? dragon\b|\bdax\b|\bshow me\b|\bnurse told you\b|\bdragon\b"
    r"|\blet's (?:do|take|get started|have a look|go ahead and do|start|talk|go over)\b"
    r"|^let's go ahead\W*$"
    r"|\bgo ahead and (?!order|start|prescribe|schedule|refer|get|send|continue|increase"
    r"|decrease|stop|take|try|use|call|make)\w+|\b(?:deep breaths?|a few breaths|real quick"
    r"|exam template|medical record number|my name is|can you (?:bend|push|pull|lift|squeeze"
    r"|turn|lean|stand|walk|lie|sit))\b",
    re.I,
)
# Unpunctuated speech loses its question marks; these openings still ask.
_OPENS_LIKE_A_QUESTION = re.compile(
    r"^(?:(?:do|does|did|have|has|are|were|can|could|would|will) (?:you|it|your|the pain)\b"
    r"|(?:is|was) (?:there|it|that)\b|(?:how|what|when|where|why|which) (?!i\b|we\b))",
    re.I,
)
_DRAGON_ORDER = re.compile(r"^hey,? dragon,?\s+(?=order|send|refer|schedule)", re.I)
# Verbs that make a medicine named by the clinician a plan ("increase your lisinopril").
_MEDICINE_ACTION = re.compile(
    r"\b(?:start|starting|prescrib\w*|increase|increasing|decrease|decreasing|continue"
    r"|continuing|stop|stopping|discontinue|refill|switch|change|try|give|add|hold|take|use"
    r"|taper|reduce|double|resume|restart|order)\b",
    re.I,
)
_TAKING = re.compile(r"\b(?:take|taking|takes|took|on|using|use|prescribed)\b", re.I)
# Words that carry no content on their own, for the "worth a line" test.
_FUNCTION_WORDS_TEXT = (
    "a an the and or but so of to in on at for with from by as is are was were be been being "
    "i you he she it we they me him her us them my your his its our their this that these "
    "those there here have has had do does did not no yes just very really also then than "
    "okay ok um uh like know think going gon na wan na get got go can could would will should "
    "might may must what which who how when where why all any some about up out if 's 're 've "
    "'m 'd 'll n't patient let's ahead "
)
_FUNCTION_WORDS: frozenset[str] = frozenset(_FUNCTION_WORDS_TEXT.split())
MIN_CONTENT_WORDS = 2
# "I'm gon na go ahead and order an x-ray" -> "Plan: order an x-ray". Only firm intentions:
# "we may need surgery" keeps its "may".
PLAN_LEAD_IN = "Plan:"
_PLAN_LEAD = re.compile(
    r"^(?:(?:and|so|also|then|now|for now|today|okay),?\s+)*(?:i|we)\s*(?:'ll|'m gon na|'m going to"
    r"|am going to|are going to|'re going to|'re gon na|will|wan na|want to|would like to"
    r"|'d like to|need to|plan to|'m also gon na|'m also going to|'ll also|will also)\s+"
    r"(?:(?:go ahead and|also|then|first|definitely|just)\s+)*"
    r"(?=(?:order|start|prescribe|refer|send|schedule|get|check|continue|increase|decrease|stop"
    r"|recommend|give|put|have|see|repeat|try|add|switch|change|keep|obtain|perform|draw|do|set"
    r"|place|consult|treat|inject|write|call|discontinue|hold|taper|monitor|review|arrange"
    r"|request|follow|bring|book|recheck|test|provide|apply|use|make)\b)",
    re.I,
)
# Kinds only a clinician states; the patient saying the same words is giving history.
_CLINICIAN_KINDS: frozenset[FactKind] = frozenset(
    {"vitals", "exam", "results", "assessment", "plan", "follow_up"}
)


def extract_facts(utterances: list[Utterance]) -> Iterator[Fact]:
    """Facts in transcript order (a fact said twice is yielded twice; the note merges them)."""
    pronouns = pronouns_from(u.text for u in utterances)
    asked: Piece | None = None  # the question just before the current sentence, if any
    for piece in pieces(utterances):
        text = clean_spoken(piece.text)
        if not text:  # pure filler ("uh.") between a question and its answer changes nothing
            continue
        if text.endswith("?") or _OPENS_LIKE_A_QUESTION.match(text):
            asked = piece if is_clinical_question(text) else None
            continue  # a question alone states nothing about the patient
        question, asked = asked, None
        if question is not None and _answers(question, piece):
            # The answer as said: tidying drops a leading "yeah", which would hide "yeah, no".
            line = answered_question(clean_spoken(question.text), piece.text, pronouns)
            if line is not None:
                kind = _kind_of_answer(question.text)
                yield Fact(kind, _written(line), merge_ids(question.ids, piece.ids))
                text = _after_the_answer(text)
                if not text:
                    continue
        yield from _statement_facts(text, piece, pronouns)


def _answers(question: Piece, answer: Piece) -> bool:
    known = "unknown" not in (question.speaker, answer.speaker)
    return not known or question.speaker != answer.speaker


def _kind_of_answer(question: str) -> FactKind:
    kind = kind_of(question)
    if kind in ("allergies", "medications", "social_family", "past_history"):
        return kind
    return "review_of_systems"


def _after_the_answer(answer: str) -> str:
    """The answer again when it says more than yes or no ("No fever, some chills"): read as a
    statement of its own, the yes or no kept, since it may belong to the words after it."""
    rest = re.sub(
        r"^\W*(?:yes|yeah|yep|no|nope|nah|not really|i do|i don't|i do n't|i did|i have)\b\W*",
        "",
        answer,
        flags=re.I,
    )
    return answer if len(rest.split()) >= 4 else ""


def _statement_facts(text: str, piece: Piece, pronouns: Pronouns) -> Iterator[Fact]:
    text = _DRAGON_ORDER.sub("", text)
    plain = plain_words(text)
    if any(re.fullmatch(pattern, plain) for pattern in SMALL_TALK):
        return
    if _ABOUT_THE_VISIT.search(text):
        return
    ids, voice = piece.ids, _voice(text, piece.speaker)
    reason = visit_reason_in(text)
    if reason is not None:
        yield Fact("chief_complaint", f"Chief complaint: {reason}.", ids)
    if voice == "clinician":
        vitals = vitals_in(text)
        if vitals:
            yield Fact("vitals", _capitalise(", ".join(vitals)) + ".", ids)
            return
        problem = problem_in(text)
        if problem is not None:
            yield Fact("assessment", _capitalise(problem) + ".", ids)
    allergy = allergy_in(text)
    if allergy is not None:
        status, what = allergy
        line = f"Allergies: {what}." if status == "allergic" else "Denies allergies."
        yield Fact("allergies", line, ids)
        return
    medicine_facts = list(_medicine_facts(text, ids, voice))
    if medicine_facts:
        # "You have a chest infection, so start amoxicillin ...": the order's short line
        # would lose the diagnosis that comes before it.
        diagnosis = _REASON_FOR_ORDER.match(text)
        if voice == "clinician" and diagnosis is not None:
            clause = diagnosis.group("reason").strip()
            if kind_of(clause, "clinician") == "assessment" and not is_negated_sentence(clause):
                written = third_person(written_out(clause), voice, pronouns)
                yield Fact("assessment", _capitalise(written.rstrip(".")) + ".", ids)
        yield from medicine_facts
        return
    known: Voice | None = voice if piece.speaker in ("doctor", "patient") else None
    kind = kind_of(text, known)
    if kind is None or _content_words(text) < MIN_CONTENT_WORDS:
        return
    if known == "patient" and kind in _CLINICIAN_KINDS:
        kind = "history"  # "I resisted the soft pretzels" is not an examination finding
    if voice == "clinician" and kind in ("plan", "follow_up"):
        text = _PLAN_LEAD.sub(PLAN_LEAD_IN + " ", text, count=1)
    denied = _DENIAL.match(written_out(text)) if voice == "patient" else None
    if denied is not None and len(denied.group("what").split()) <= 6:
        yield Fact(kind, f"Denies {denied.group('what')}.", ids)
        return
    yield Fact(kind, _capitalise(third_person(written_out(text), voice, pronouns)), ids)


# A diagnosis and the order it leads to, in one sentence: "<diagnosis>, so <order>".
_REASON_FOR_ORDER = re.compile(r"^(?P<reason>[^,;.?!]{6,}?),?\s+so\s+(?=\w)", re.I)


def _medicine_facts(text: str, ids: tuple[str, ...], voice: Voice) -> Iterator[Fact]:
    """Plan lines for medicines the clinician orders; medication lines for those the patient
    takes. The short line keeps only the verb and the medicine, so it is written only when
    nothing else bears on them: a negated sentence ("I'm not on lisinopril") or a hedged verb
    or medicine ("we will probably increase your metformin") stays whole."""
    if is_negated_sentence(text):
        return
    for medication in medications_in(text):
        before = text[: text.lower().find(medication.name.lower())]
        if bears_on_what_follows(before):
            continue
        if voice == "clinician":
            action = _governing_verb(before, _MEDICINE_ACTION)
            if action is not None and not bears_on_what_follows(before[: action.start()]):
                line = f"Plan: {action.group().lower()} {medication.describe()}."
                yield Fact("plan", line, ids)
        elif _governing_verb(before, _TAKING) is not None or _has_regimen(medication):
            yield Fact("medications", f"Medications: {medication.describe()}.", ids)


# What may stand between a verb and the medicine it acts on: "increase | your dose of |
# metformin", "start | you on | lisinopril". A clause boundary may not: in "switch to twice a
# day, but ... are you taking your metformin" the metformin is not switched.
MAX_WORDS_TO_MEDICINE = 4
_CLAUSE_BOUNDARY = re.compile(
    r"[,.;:?!]|\b(?:but|because|and|or|so|then|if|when|that|which|although|though|however"
    r"|okay|ok|alright|are|is|do|does|did|have|has|were|was)\b",
    re.I,
)


def _governing_verb(before: str, verbs: re.Pattern[str]) -> re.Match[str] | None:
    """The verb that acts on the medicine said right after ``before``: the last of ``verbs``
    in the medicine's own clause, at most :data:`MAX_WORDS_TO_MEDICINE` words before it."""
    clause_start = max((m.end() for m in _CLAUSE_BOUNDARY.finditer(before)), default=0)
    found = list(verbs.finditer(before, clause_start))
    if not found or len(before[found[-1].end() :].split()) > MAX_WORDS_TO_MEDICINE:
        return None
    return found[-1]


def _has_regimen(medication: Medication) -> bool:
    return bool(medication.dose or medication.frequency)


_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|my|me|myself)\b", re.I)
_CLINICIAN_CUES = re.compile(
    r"\b(?:you|your|you're|you've|i'll|we'll|we will|let's|let me|we're going|i want you"
    r"|i'd like you|on exam\w*|i (?:can )?(?:hear|see|feel|appreciate)|i recommend|looks like"
    r"|i think (?:this|it|you|that)|i'm going to (?:prescribe|order|refer|start|send|give)"
    r"|i (?:want|wan na|would like|'d like|need) to (?:cover|order|start|check|see|get|give"
    r"|put|prescribe|refer|send|try|treat|do|examine|listen|look))\b",
    re.I,
)


def _voice(text: str, speaker: Speaker) -> Voice:
    """Who speaks: the label when the transcript has one, else what the sentence says. With
    no label, a sentence speaks for the patient only when it says "I"/"my" and nothing marks
    the clinician ("you", "I'll order", "on exam")."""
    if speaker == "patient":
        return "patient"
    if speaker == "doctor":
        return "clinician"
    if _FIRST_PERSON.search(text) and not _CLINICIAN_CUES.search(text):
        return "patient"
    return "clinician"


def _content_words(text: str) -> int:
    return sum(w not in _FUNCTION_WORDS for w in re.findall(r"[a-z0-9']+", text.lower()))


def _written(text: str) -> str:
    return _capitalise(written_out(text))


# A plain denial in the patient's words: "I don't have any chest pain." -> "Denies chest pain."
_DENIAL = re.compile(
    r"^(?:no,?\s+)?i (?:do not|did not|have not|have never|never|am not) (?:had |have |having"
    r"|noticed |experienced |get |got )(?:any )?(?P<what>[a-z][a-z ,'-]*?)\.?$",
    re.I,
)


def _capitalise(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
