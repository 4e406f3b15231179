"""The offline, deterministic extractive note writer (v1).

With no model and no key, the only note we can stand behind is made of the transcript's own
sentences: each note sentence *is* a transcript sentence (whitespace tidied, leading filler
removed, first letter capitalised, final period added) citing the utterances it came from. The
one composed form, ``Asked "..." — answered "..."``, holds only quoted transcript words. Nothing
is paraphrased, so nothing is invented; the price is a note that reads like a transcript.

Flow: split utterances into sentences (re-joining one Whisper cut across segments) -> pair a
short answer with its question -> drop small talk and bare questions -> classify the rest with
the rules below (no match: left out, not guessed) -> place it in the template's sections.
Speaker labels are ignored on purpose: local Whisper has no diarization.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from clinscribe.notes.model import (
    FactKind,
    NoteDraft,
    NoteSection,
    NoteSentence,
    NoteTemplate,
    Utterance,
)

WRITER_NAME = "extractive"

# --- sentence splitting -----------------------------------------------------------------------
# A full stop after these words is part of the word, not the end of a sentence ("Dr. Moore").
ABBREVIATIONS: tuple[str, ...] = ("dr", "mr", "mrs", "ms", "st", "vs", "approx", "e.g", "i.e")
# Whisper cuts sentences across segments: a piece without final punctuation joins the next
# utterance's first piece if this close in time, over at most this many (unpunctuated speech).
MAX_JOIN_GAP_SECONDS = 1.0
MAX_JOINED_UTTERANCES = 3

# Spoken filler removed from the start of a sentence; it never carries clinical meaning there.
LEADING_FILLER: tuple[str, ...] = (
    "um+", "uh+", "erm", "hmm+", "mm-?hmm", "oh", "so", "okay", "ok", "alright", "all right",
    "and", "well", "now",
)  # fmt: skip

# --- what is not clinical content ------------------------------------------------------------
_ACKNOWLEDGEMENT = (
    r"okay|ok|mm-?hmm|uh-?huh|hmm+|sure|right|all right|alright|got it|i see|great|good"
    r"|perfect|fine|cool|you got it"
)
_ACKNOWLEDGEMENTS = rf"(?:(?:{_ACKNOWLEDGEMENT})\s*)+"
# Matched against the whole sentence, lowercased with punctuation removed.
SMALL_TALK: tuple[str, ...] = (
    _ACKNOWLEDGEMENTS,
    # Bare yes/no carries meaning only next to its question (see pairing below).
    rf"(?:(?:yes|yeah|yep|no|nope|nah|{_ACKNOWLEDGEMENT})\s*)+",
    r"(?:hi|hello|hey|good (?:morning|afternoon|evening)|bye|goodbye)\b.{0,30}",
    r"(?:it's |it is )?(?:nice|good|great) to (?:see|meet) you.*",
    r"(?:thank you|thanks)\b.{0,30}",
)
# Questions whose answer says nothing clinical, so a short reply to them is not worth a line.
NON_CLINICAL_QUESTIONS: tuple[str, ...] = (
    r"how are you(?: doing)?(?: today)?|how have you been|how's it going",
    r"(?:do you have )?any (?:other |more )?questions.*",
    r"is that right|right|okay|ok|correct|you know|sound good|all right|alright|yeah",
    r"does that (?:sound|make sense|work).*",
    r"(?:hi|hello|hey)\b.*",
)
# "I'll refer you to a cardiologist, okay?" informs rather than asks: the tag is dropped and the
# rest is treated as a statement. ", right?" is left alone: it asks the patient to confirm.
TRAILING_TAG = r"\s*,\s*(?:okay|ok|all right|alright)\s*\?$"
# A reply this short right after a question is kept as a quoted question/answer pair.
SHORT_ANSWER_MAX_WORDS = 6
QA_TEMPLATE = 'Asked "{question}" \u2014 answered "{answer}"'
QA_CONNECTIVE_WORDS: tuple[str, ...] = ("asked", "answered")

# --- classification rules --------------------------------------------------------------------
# Tried in this order, first matching rule wins, so a sentence lands in one section. Objective
# first: a number with a unit is the least ambiguous cue. Plan before assessment: "I think it's
# bronchitis, so I'll prescribe..." is an order. Subjective last: "my", "since" are everywhere.
SECTION_PRIORITY: tuple[str, ...] = ("objective", "plan", "assessment", "subjective")

_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundred"
)
_NUM = rf"(?:\d+(?:\.\d+)?|\b(?:{_NUMBER_WORDS})\b)"
# The patient describing themselves, not a clinician stating a finding or a diagnosis.
_PATIENT_VOICE = r"\b(?:my|i've|i'm|i have|i had|i feel|i felt|i get|i got|history)\b"
# A medicine the patient already takes is history (subjective), not a new order.
_PATIENT_MEDICATION = r"\b(?:i'm|i am|i've been|i have been|i was|been) (?:taking|on)\b|\bi take\b"
# "We'll get an x-ray" is a plan, not a result.
_FUTURE_VOICE = r"\b(?:i'll|we'll|i will|we will|going to|let's|order|get an?|get some)\b"
_CONDITIONS = (
    r"infection|\w{3,}itis|\w{3,}osis|pneumonia|sprain|strain|fracture|virus|viral|bacterial"
    r"|flu|cold|allerg\w*|asthma|migraine|reflux|ulcer|anemia|diabetes|hypertension|injury"
)


@dataclass(frozen=True)
class Rule:
    """A regex that sends a sentence to a section, unless the ``unless`` regex also matches."""

    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        vetoed = self.unless is not None and self.unless.search(text) is not None
        return not vetoed and self.pattern.search(text) is not None


def _rule(pattern: str, unless: str | None = None) -> Rule:
    return Rule(re.compile(pattern, re.I), re.compile(unless, re.I) if unless else None)


RULES: dict[str, tuple[Rule, ...]] = {
    "objective": (
        # Vital signs: the sign's name and a number in the same sentence.
        _rule(
            r"\b(?:blood pressure|bp|temperature|temp|pulse|heart rate|oxygen|o2 sats?|sats"
            rf"|saturation|spo2|respiratory rate|resp rate|weight|weighs?)\b[^.?!]*{_NUM}"
        ),
        _rule(
            rf"{_NUM}\s*(?:%|(?:degrees|mm ?hg|percent|bpm|beats|breaths|kg|kilos?|pounds|lbs)\b)"
        ),
        _rule(
            r"\b(?:vital signs|vitals|blood pressure|heart rate|pulse|oxygen\w*|temperature)\b"
            r"[^.?!]*\b(?:normal|good|fine|stable|elevated|high|low)\b",
            unless=_PATIENT_VOICE,
        ),
        _rule(rf"{_NUM}\s*(?:over|/)\s*{_NUM}"),  # 128 over 82
        # Examination findings.
        _rule(r"\bon (?:exam|examination)\b|\bexam(?:ination)? (?:shows|reveals|today)\b"),
        _rule(
            r"\b(?:lungs?|chest sounds|i can hear|i hear|heart sounds|murmur|wheez\w*|crackles"
            r"|tender\w*|swelling|swollen|rash|range of motion|sensation|reflexes|bruis\w*"
            r"|effusion|edema)\b",
            unless=rf"{_PATIENT_VOICE}|\border\b",  # "I'll order an echo for that murmur": a plan
        ),
        # Test results.
        _rule(
            r"\b(?:x-?rays?|labs?|lab work|blood work|blood tests?|results?|ecg|ekg|echo\w*|scan"
            r"|mri|ct|urinalysis|swab|culture)\b[^.?!]*\b(?:shows?|showed|shown|revealed?"
            r"|came back|appears?|demonstrat\w*|confirm\w*|negative|positive|elevated|normal)\b",
            unless=_FUTURE_VOICE,
        ),
    ),
    "plan": (
        _rule(r"\b(?:prescrib\w*|prescription|refill)\b"),
        _rule(
            rf"{_NUM}\s*(?:mg|milligrams?|mcg|micrograms?|ml|milliliters?|tablets?|capsules?"
            r"|puffs?)\b|\btak(?:e|ing)\b[^.?!]*\b(?:tablets?|pills?|capsules?|dose)\b",
            unless=_PATIENT_MEDICATION,
        ),
        _rule(rf"\b(?:once|twice|{_NUM} times) (?:a|per) day\b|\bevery {_NUM} hours\b"),
        _rule(
            r"\bfollow[- ]?up\b|\bcome back\b|\breturn\b|\brefer\w*\b|\bsee you (?:in|next)\b",
            unless=r"\b(?:presents?|here (?:today )?for|today for|(?:coming|came) in for)\b",
        ),
        _rule(
            r"\border\w* (?:(?:a|an|some|the|you)\s+)?(?:\w+\s+)?(?:tests?|x-?rays?|blood"
            r"|labs?|scan|mri|ct|ultrasound|ecg|ekg|echo\w*|culture|swab)"
        ),
        _rule(
            r"\b(?:i will|we will|i'll|we'll|i'm going to|we're going to|i want you to"
            r"|i'd like you to|i recommend|recommend\w*|you should|start you on|continue)\b",
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
        _rule(r"\b(?:looks like|sounds like|seems like)\b", unless=r"\?"),
        _rule(r"\bi think (?:you have|you've got|this is|it's|it is|that's|you're|we're)"),
        _rule(r"\b(?:diagnos\w*|impression|consistent with|differential|suspect\w*)\b"),
        _rule(r"\b(?:un)?likely\b"),
        _rule(rf"\bprobabl[ey]\b[^.?!]*\b(?:{_CONDITIONS})\b"),
        _rule(r"\b(?:infection|\w{3,}itis|pneumonia|sprain|strain)\b", unless=_PATIENT_VOICE),
    ),
    "subjective": (
        _rule(
            r"\b(?:pain\w*|hurts?|hurting|ache|aches|aching|cough\w*|fevers?|feverish"
            r"|headaches?|nause\w*|vomit\w*|diarrh\w*|dizz\w*|tired|fatigue\w*|short(?:ness)? of"
            r" breath|breath\w*|sore|chills|sweats?|bloat\w*|lightheaded|numb\w*|tingl\w*|itch\w*"
            r"|rash|swell\w*|swollen|cramp\w*|bleed\w*|congest\w*|runny|sneez\w*|wheez\w*"
            r"|sleep\w*|appetite|weight (?:gain|loss))\b"
        ),
        _rule(
            rf"\bsince\b|\bfor (?:a|an|the past|a few|a couple(?: of)?|several|{_NUM})"
            r" (?:hours?|days?|weeks?|months?|years?)\b|\bstarted\b|\bbegan\b|\bago\b"
            r"|\byesterday\b|\blast (?:night|week|month|year)\b"
        ),
        _rule(r"\b(?:i have|i've been|i've had|i had|my)\b"),
        _rule(rf"\ballerg\w*|{_PATIENT_MEDICATION}|\bmedications?\b|\bsurger(?:y|ies)\b"),
        # Pertinent negatives; "No, no chest pain." is caught by the symptom words above.
        _rule(r"\b(?:smok\w*|alcohol|denies|never (?:had|been|smoked)|no history)\b"),
    ),
}


# The rules sort sentences into SOAP sections; other templates place them by kind.
KIND_OF_SOAP_SECTION: dict[str, FactKind] = {
    "subjective": "history",
    "objective": "exam",
    "assessment": "assessment",
    "plan": "plan",
}


def classify_sentence(sentence: str) -> str | None:
    """The SOAP section key of a sentence, or None when no rule matches (it is left out)."""
    for section in SECTION_PRIORITY:
        if any(rule.matches(sentence) for rule in RULES[section]):
            return section
    return None


# --- the writer ------------------------------------------------------------------------------
class ExtractiveNoteWriter:
    """The offline default ``NoteWriter``: deterministic, no network, never invents."""

    name = WRITER_NAME

    async def write(self, utterances: list[Utterance], template: NoteTemplate) -> NoteDraft:
        # Pure and fast (milliseconds for an hour of speech), so no worker thread is needed.
        return build_note(utterances, template)


def build_note(utterances: list[Utterance], template: NoteTemplate) -> NoteDraft:
    """Build an extractive note; every sentence cites the utterances it quotes (sync, pure)."""
    by_section: dict[str, list[NoteSentence]] = {spec.key: [] for spec in template.sections}
    seen: dict[str, NoteSentence] = {}
    for soap_section, text, ids in _extract(utterances):
        spec = template.section_for(KIND_OF_SOAP_SECTION[soap_section])
        if spec is None:  # a template without a place for this: leave it out
            continue
        section = spec.key
        key = text.lower()
        if key in seen:  # said twice: keep the first, but cite every place it was said
            seen[key].evidence = list(_merge_ids(seen[key].evidence, ids))
            continue
        sentence = NoteSentence(text=text, evidence=list(ids))
        seen[key] = sentence
        by_section[section].append(sentence)
    sections = [NoteSection(s.key, s.title, by_section[s.key]) for s in template.sections]
    return NoteDraft(template=template.key, writer=WRITER_NAME, sections=sections)


@dataclass(frozen=True)
class _Piece:  # a sentence, or a fragment of one, and the ids of the utterances it came from
    text: str
    ids: tuple[str, ...]


def _extract(utterances: list[Utterance]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Yield (section key, note sentence, evidence ids) in transcript order."""
    asked: _Piece | None = None  # the question just before the current sentence, if any
    for piece in _split_trailing_questions(_pieces(utterances)):
        sentence = tidy_sentence(re.sub(TRAILING_TAG, ".", piece.text.strip(), flags=re.I))
        if not sentence:  # pure filler ("uh.") between a question and its answer changes nothing
            continue
        if sentence.endswith("?"):
            asked = piece if not _fullmatch_any(NON_CLINICAL_QUESTIONS, sentence) else None
            continue  # a question alone states nothing about the patient
        question, asked = asked, None
        section = classify_sentence(sentence)
        # "This looks like bronchitis." after "Is it serious?" is an assessment, not an answer.
        if question is not None and _is_short_answer(sentence) and section in (None, "subjective"):
            text = QA_TEMPLATE.format(question=tidy_sentence(question.text), answer=sentence)
            yield "subjective", text, _merge_ids(question.ids, piece.ids)
            continue
        if _fullmatch_any(SMALL_TALK, sentence):
            continue
        if section is not None:
            yield section, sentence, piece.ids


def _pieces(utterances: list[Utterance]) -> Iterator[_Piece]:
    """Sentence pieces of all utterances, re-joining a sentence cut across utterances."""
    carry: _Piece | None = None  # an unterminated last piece waiting for its continuation
    previous_end = 0.0
    for utterance in utterances:
        parts = split_sentences(utterance.text)
        if not parts:
            continue
        pieces = [_Piece(part, (utterance.id,)) for part in parts]
        if carry is not None:
            if utterance.start - previous_end <= MAX_JOIN_GAP_SECONDS:
                head = pieces[0]
                pieces[0] = _Piece(f"{carry.text} {head.text}", _merge_ids(carry.ids, head.ids))
            else:
                yield carry
            carry = None
        last = pieces[-1]
        joinable = len(last.ids) < MAX_JOINED_UTTERANCES and tidy_sentence(last.text) != ""
        if joinable and not _TERMINATED.search(last.text):  # "uh," alone is not worth citing
            carry = pieces.pop()
        yield from pieces
        previous_end = utterance.end
    if carry is not None:
        yield carry


# Whisper often runs an answer and the next question together with commas: "Yes, since last
# night, do you get short of breath?". The trailing clause that opens like a question is split
# off (only the comma becomes a stop; no word changes), so the answer is not lost as a question.
_TRAILING_QUESTION = re.compile(
    r"^(?P<statement>.*\w.*?),\s+(?P<question>(?:do|does|did|are|is|was|were|have|has|had|any"
    r"|what|how|when|where|which|who|why|can|could|would|will|should)\b[^,]*\?)$",
    re.I,
)


def _split_trailing_questions(pieces: Iterable[_Piece]) -> Iterator[_Piece]:
    for piece in pieces:
        match = _TRAILING_QUESTION.match(piece.text.strip())
        if match is None:
            yield piece
            continue
        yield _Piece(match.group("statement") + ".", piece.ids)
        yield _Piece(match.group("question"), piece.ids)


_BOUNDARY = re.compile(r"[.?!]+[\"')\]]*(?=\s|$)")
_TERMINATED = re.compile(r"[.?!][\"')\]]*$")


def split_sentences(text: str) -> list[str]:
    """Split on . ? ! followed by a space or the end; decimals (38.2) and "Dr." stay whole."""
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        words = text[start : match.start()].split()
        abbreviation = match.group() == "." and words and words[-1].lower() in ABBREVIATIONS
        if abbreviation or match.group().startswith(".."):  # "..." is trailing off, not a stop
            continue
        piece = text[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


_FILLER = re.compile(rf"^(?:(?:{'|'.join(LEADING_FILLER)})\b[\s,.\-]*)+", re.I)


def tidy_sentence(text: str) -> str:
    """Whitespace tidied, leading filler dropped, first letter capitalised, final period added.

    Returns "" when nothing with a letter or digit is left. Words are never changed or added.
    """
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.?!;:])", r"\1", text)  # "pain , since" (tokenised text) -> "pain, since"
    text = _FILLER.sub("", text)
    text = text.lstrip(" ,.;:-").rstrip(" ,;:-")
    if not re.search(r"\w", text):
        return ""
    if not _TERMINATED.search(text):
        text += "."
    return text[0].upper() + text[1:]


def _fullmatch_any(patterns: Iterable[str], sentence: str) -> bool:
    """Whether a pattern matches the whole sentence, lowercased and without punctuation."""
    plain = " ".join(re.sub(r"[^\w\s'-]", " ", sentence.lower()).split())
    return any(re.fullmatch(pattern, plain) for pattern in patterns)


def _is_short_answer(sentence: str) -> bool:
    # "Okay." after a question acknowledges it; "Yes." / "No." / "Since Monday." answer it.
    short = len(re.findall(r"\w+(?:['-]\w+)*", sentence)) <= SHORT_ANSWER_MAX_WORDS
    return short and not _fullmatch_any([_ACKNOWLEDGEMENTS], sentence)


def _merge_ids(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    """Ids of both, each once, in first-seen order."""
    return tuple(dict.fromkeys([*first, *second]))
