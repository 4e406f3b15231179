"""A yes/no question and its answer, as one note line: "Any fever?" + "No." -> "Denies fever."

The line is the question's own words about the patient (its *topic*) behind a fixed lead-in
chosen by the answer: "Reports" (yes), "Denies" (no), "Unsure about" (not sure). A question
that asks whether something is so ("Are you taking your medication?") becomes that statement
about the patient, with "not" when the answer is no. Questions that hold a negation of their
own ("You don't smoke?") are left alone: "No" to them is ambiguous.
"""

from __future__ import annotations

import re

from clinscribe.notes.negation import Polarity, answer_polarity
from clinscribe.notes.person import THE_PATIENT, Pronouns, third_person
from clinscribe.notes.spoken import plain_words

# Words the pairing may write that the speakers did not say.
QUESTION_WORDS: frozenset[str] = frozenset(
    {"reports", "denies", "unsure", "about", "not", "the", "patient", "is", "has", "does"}
    | {"was", "did", "can", "will"}
)
LEAD_IN: dict[Polarity, str] = {"yes": "Reports", "no": "Denies", "unsure": "Unsure about"}

# Questions whose answer says nothing clinical.
NON_CLINICAL_QUESTIONS: tuple[str, ...] = (
    r"how are you(?: doing)?(?: today)?|how have you been|how's it going|how are things",
    r"(?:do you have )?any (?:other |more )?questions.*|anything else.*",
    r"is that right|right|okay|ok|correct|you know|sound good|all right|alright|yeah|yes|no",
    r"(?:does|did) that (?:sound|make sense|work).*|is that (?:okay|ok|alright|all right).*",
    r"(?:hi|hello|hey)\b.*|.*\bdragon\b.*|can you hear me.*|are you ready.*",
    r"(?:is|was) (?:that|this|it) (?:okay|ok|good|fine).*|(?:do you )?understand.*",
)
# "Do you have any chest pain?" -> topic "chest pain".
_HAVE = (
    r"have|had|having|experience[ds]?|experiencing|notice[ds]?|noticing|get|getting|gotten|got"
    r"|feel|felt|feeling|develop(?:ed)?|suffer(?:ed)? from|deal(?:t)? with|run into|ran into"
)
_FINDING_QUESTIONS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        rf"^(?:do|did|have|has|are|were|had) you (?:(?:ever|still|also|currently|recently|been"
        rf"|had|ever had)\s+)*(?:{_HAVE})\s+(?P<topic>.+)$",
        r"^(?:any|no),?\s+(?:(?:other\s+)?symptoms,?\s+(?:like|such as|of)?,?\s*)?(?P<topic>.+)$",
        r"^(?:is|was) there (?P<topic>any.+)$",
        r"^(?:how|what) about (?P<topic>.+)$",
    )
)
# "Are you taking your medication?" -> "The patient is taking the patient's medication."
_STATEMENT_QUESTION = re.compile(
    r"^(?P<aux>are|were|have|do|did|can|will|is|was|does|has) (?P<subject>you|it|that|this"
    r"|the pain|your [a-z]+) (?P<rest>.+)$"
)
_AGREE = {"are": "is", "were": "was", "have": "has", "do": "does"}
_ENDINGS = re.compile(
    r",?\s*(?:(?:or\s+)?(?:anything|something)(?: like that| else| of that nature)?|at all"
    r"|lately|recently|these days|right now|today|that you know of|or not|as well|too|or no"
    r"|by any chance|currently|or)$"
)
_QUESTION_LEAD = re.compile(r"^(?:(?:and|so|okay|ok|now|also|but|um|uh|well|then|alright),?\s+)+")
# "You're taking your medication?" answered yes: said as a statement about the patient.
_DECLARATIVE = re.compile(r"^(?:you're|you've|you|your\s+[a-z]+|it's|it|that's)\s")
_OWN_NEGATION = re.compile(r"\b(?:not|never|n't|don't|didn't|haven't|aren't|isn't|no longer)\b")
_NOT_A_TOPIC = re.compile(
    r"^(?:idea|chance|reason|way|time|questions?|concerns?)\b|\b(?:i|you|we|they|said|say|says"
    r"|think|know|missed)\b"
)
_STARTS_WITH_YES_OR_NO = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|no|nope|nah|uh-huh|mm-hmm|mhm|not really|never|none|nothing"
    r"|correct|definitely|absolutely|maybe|not sure|i'm not sure)\b",
    re.I,
)
_WH = re.compile(r"^(?:what|how|when|where|which|who|why|tell)\b")


def is_clinical_question(question: str) -> bool:
    plain = plain_words(question)
    return not any(re.fullmatch(pattern, plain) for pattern in NON_CLINICAL_QUESTIONS)


def answered_question(question: str, answer: str, pronouns: Pronouns = THE_PATIENT) -> str | None:
    """The note line for ``question`` answered by ``answer``, or None when it cannot be said
    faithfully (not a yes/no question, an unclear answer, a negated question)."""
    polarity = answer_polarity(answer)
    if polarity is None:
        return None
    if not _STARTS_WITH_YES_OR_NO.match(answer) and len(answer.split()) > 3:
        return None  # "I'm allergic to sulfa drugs": a statement, written as one
    plain = _QUESTION_LEAD.sub("", _lowered(question))
    if _WH.match(plain) or _OWN_NEGATION.search(plain.removeprefix("no ")):
        return None
    topic = _finding_topic(plain)
    if topic is not None:
        topic = third_person(topic, "clinician", pronouns)
        return f"{LEAD_IN[polarity]} {topic}{_detail(answer, polarity)}."
    if polarity == "unsure":
        return None
    if _DECLARATIVE.match(plain):
        words = len(plain.split())
        if polarity == "yes" and words <= 14:
            return _sentence(third_person(plain, "clinician", pronouns))
        return None
    return _as_statement(plain.replace(",", ""), polarity, pronouns)


def _lowered(question: str) -> str:
    """The question lowercased, commas kept (they separate the findings a question lists)."""
    text = re.sub(r"[^\w\s',/-]", " ", question.lower())
    return re.sub(r"\s+,", ",", " ".join(text.split())).strip(" ,")


def _finding_topic(plain: str) -> str | None:
    for pattern in _FINDING_QUESTIONS:
        match = pattern.match(plain)
        if match is None:
            continue
        topic = match.group("topic")
        while True:
            shorter = _ENDINGS.sub("", topic)
            if shorter == topic:
                break
            topic = shorter
        topic = re.sub(r"\b(?:any|no)\s+", "", topic)
        topic = re.sub(r"(?:,\s*)+", ", ", topic).strip(" ,")
        words = topic.split()
        # A topic is a finding, not a clause: "any idea what caused it", "any other symptoms i
        # might have missed" are not symptoms.
        if 1 <= len(words) <= 12 and not _NOT_A_TOPIC.search(topic):
            return topic
    return None


def _as_statement(plain: str, polarity: Polarity, pronouns: Pronouns) -> str | None:
    match = _STATEMENT_QUESTION.match(plain)
    if match is None:
        return None
    aux, subject, rest = match.group("aux"), match.group("subject"), match.group("rest")
    if len(rest.split()) > 12:
        return None
    if subject == "you":
        subject = "the patient"
        aux = _AGREE.get(aux, aux)
    else:
        subject = third_person(subject, "clinician", pronouns)
    rest = third_person(rest, "clinician", pronouns)
    if aux in ("do", "does") and polarity == "yes":
        verb, _, tail = rest.partition(" ")
        if subject == "the patient" and verb in _TAKES_S:
            return _sentence(f"{subject} {_TAKES_S[verb]} {tail}")
        return None
    negation = " not" if polarity == "no" else ""
    if polarity == "yes":
        rest = re.sub(r"\bany\s+", "", rest)  # "allergic to any medicines" + yes: not to all
    return _sentence(f"{subject} {aux}{negation} {rest}")


# "Do you smoke?" "Yes." -> "The patient smokes." (only these verbs; others are left out).
_TAKES_S: dict[str, str] = {
    verb: verb + ("es" if verb.endswith(("s", "sh", "ch", "x", "o")) else "s")
    for verb in (
        "smoke", "drink", "take", "use", "exercise", "work", "live", "snore", "vape", "chew",
        "drive", "walk", "run", "sleep", "eat", "wear", "check", "monitor", "follow", "see",
    )
}  # fmt: skip


def _detail(answer: str, polarity: Polarity) -> str:
    """What follows the yes/no word when it is short ("Yes, since yesterday." -> ", since
    yesterday"); nothing for hedges that only repeat the answer ("No, not that I've noticed")."""
    if polarity != "yes":
        return ""
    rest = re.sub(
        r"^\W*(?:yes|yeah|yep|yup|uh-huh|mm-hmm|mhm|i do|i did|i have|correct|definitely"
        r"|absolutely)\b\W*",
        "",
        answer.strip(),
        flags=re.I,
    ).rstrip(" .!?")
    if not rest or rest == answer.strip().rstrip(" .!?") or len(rest.split()) > 8:
        return ""
    if re.search(r"\b(?:i|i'm|i've|my|me)\b", rest, re.I):
        return ""  # the patient's own sentence: written on its own line instead
    return f", {rest}"


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip(" ,")
    return text[0].upper() + text[1:] + "."
