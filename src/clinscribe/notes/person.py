"""From the patient's "I" and the clinician's "you" to a note's "the patient".

A note speaks of the patient in the third person: "I've had a cough" becomes "The patient has
had a cough"; the clinician's "your knee is swollen" becomes "their knee is swollen" ("her"/"his").
Only pronouns and the verb agreeing with them change ("I feel" -> "the patient feels"); every
other word is the speaker's. The clinician's own "I" and "we" stay: the note is in their voice.

He/she is used only when the transcript says so plainly (:func:`pronouns_from`: "a 50-year-old
female", "Mr."); otherwise "the patient", "their", "them".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Voice = Literal["patient", "clinician"]


@dataclass(frozen=True)
class Pronouns:
    subject: str
    object: str
    possessive: str
    reflexive: str


THE_PATIENT = Pronouns("the patient", "them", "their", "themselves")
SHE = Pronouns("she", "her", "her", "herself")
HE = Pronouns("he", "him", "his", "himself")

# Words the conversion may write that the speaker did not say (template glue, listed once).
PERSON_WORDS: frozenset[str] = frozenset(
    {"the", "patient", "their", "them", "themselves", "she", "her", "herself", "he", "him", "his"}
    | {"himself", "is", "has", "was", "does", "doesn't", "isn't", "hasn't", "wasn't", "had"}
    | {"would", "will", "am", "are", "have", "not", "their", "them", "isn't", "wasn't"}
)

_FEMALE = re.compile(
    r"\b(?:year-old|years old|year old)\s+(?:female|woman|lady|girl)\b|\b(?:mrs|ms)\b\.?", re.I
)
_MALE = re.compile(r"\b(?:year-old|years old|year old)\s+(?:male|man|gentleman|boy)\b|\bmr\b\.?")


def pronouns_from(texts: Iterable[str]) -> Pronouns:
    """She or he when the clinician says "a 50-year-old female" or "Mrs./Mr.", else neutral."""
    joined = " ".join(texts).lower()
    female, male = _FEMALE.search(joined), _MALE.search(joined)
    if female and not male:
        return SHE
    if male and not female:
        return HE
    return THE_PATIENT


# Between a subject and its verb ("I still take", "you usually get").
_ADVERBS = (
    r"(?:(?:still|just|also|really|always|never|often|sometimes|usually|only|mostly|even|actually"
    r"|definitely|normally|generally|kind of|sort of|already|now|probably|mainly|currently)\s+)*"
)
# Modal and past forms that do not change with the subject.
_FIXED = (
    r"can|could|would|will|should|might|may|must|did|had|cannot|can't|ca|wo|ran|went|got"
    r"|felt|took|had|saw|noticed|started|tried|used|thought|knew|came|began|fell|hurt|broke|was"
)
_BE_HAVE = {
    "am": "is", "'m": "is", "are": "is", "'re": "is", "have": "has", "'ve": "has", "do": "does",
    "were": "was", "'ll": "will", "go": "goes", "'d": "would",
}  # fmt: skip


def _third_person_verb(verb: str) -> str:
    """``feel`` -> ``feels``, ``try`` -> ``tries``, ``watch`` -> ``watches``."""
    lowered = verb.lower()
    if lowered in _BE_HAVE:
        return _BE_HAVE[lowered]
    if re.search(r"(?:s|sh|ch|x|z|o)$", lowered):
        return verb + "es"
    if re.search(r"[^aeiou]y$", lowered):
        return verb[:-1] + "ies"
    return verb + "s"


# Present-tense verbs people use about themselves in a consultation; others stay as said.
_PRESENT_VERBS_TEXT = (
    "feel get take think know need want try use notice see wake work walk eat drink smoke "
    "sleep like love hate exercise run play live wear check go do have get hurt forget "
    "remember struggle cough sneeze sweat bleed itch ache vomit drive lift bend sit stand "
    "climb swim bike hike travel watch miss mean keep put apply avoid follow monitor "
)
PRESENT_VERBS: frozenset[str] = frozenset(_PRESENT_VERBS_TEXT.split())


def third_person(text: str, voice: Voice, pronouns: Pronouns = THE_PATIENT) -> str:
    """``text`` with the patient named in the third person (see the module docstring)."""
    if voice == "patient":
        text = _replace_subject(text, r"i", pronouns)
        text = re.sub(r"\bmy\b", pronouns.possessive, text, flags=re.I)
        text = re.sub(r"\bmyself\b", pronouns.reflexive, text, flags=re.I)
        text = re.sub(r"(?<![\w'])me\b", pronouns.object, text, flags=re.I)
        return text
    text = _replace_subject(text, r"you", pronouns)
    text = re.sub(r"\byour\b", pronouns.possessive, text, flags=re.I)
    text = re.sub(r"\byourself\b", pronouns.reflexive, text, flags=re.I)
    text = re.sub(r"\byou\b", pronouns.object, text, flags=re.I)
    return re.sub(r"\bi\b", "I", text)  # the clinician's own "i" as a written "I"


def _replace_subject(text: str, word: str, pronouns: Pronouns) -> str:
    """Replace the pronoun where it is a subject and make its verb agree."""
    pattern = re.compile(
        rf"(?<![\w'])(?:{word})(?![\w-])(?P<contraction>'m|'re|'ve|'ll|'d)?\s*(?P<adverbs>{_ADVERBS})"
        r"(?P<verb>[a-z]+(?:'[a-z]+)?)?(?P<neg> n't|n't)?",
        re.I,
    )
    used = 0

    def subject(match: re.Match[str]) -> str:
        nonlocal used
        verb = match.group("verb") or ""
        contraction = match.group("contraction")
        is_subject = bool(contraction) or _is_verb(verb)
        if not is_subject:
            return match.group()
        used += 1
        name = pronouns.subject if used > 1 else "the patient"  # named first, then he/she
        adverbs = match.group("adverbs") or ""
        negation = match.group("neg") or ""
        if contraction:
            agreed = _BE_HAVE[contraction.lower()]
            rest = f" {adverbs}{verb}".rstrip() if verb else ""
            return f"{name} {agreed}{rest}{negation}"
        return f"{name} {adverbs}{_agree(verb)}{negation}"

    return pattern.sub(subject, text)


def _is_verb(word: str) -> bool:
    lowered = word.lower()
    return (
        lowered in PRESENT_VERBS
        or lowered in _BE_HAVE
        or re.fullmatch(_FIXED, lowered) is not None
        or lowered.endswith(("ed", "n't"))
        or lowered in ("am", "are", "was", "were", "do", "did", "have", "had", "has")
    )


def _agree(verb: str) -> str:
    lowered = verb.lower()
    if lowered in ("was", "were"):
        return "was"
    if lowered in ("aren't", "weren't"):
        return {"aren't": "isn't", "weren't": "wasn't"}[lowered]
    if re.fullmatch(_FIXED, lowered) or lowered.endswith(("ed", "n't")):
        return verb
    return _third_person_verb(verb)


# Contractions written out: "I'm" -> "I am", "don't"/"do n't" (tokenised) -> "do not", so the
# verb can agree with "the patient" ("does not"). Other negated forms ("isn't", "can't") stay
# as said: nothing to agree with, and the speaker's form is the surest evidence.
_NOT = re.compile(r"\b(do|does|did|have|has) ?n't\b", re.I)
_CONTRACTED = re.compile(
    r"\b(i|we|they|you|he|she|it|that|there|what|who)(?:'(m|re|ll|ve)|('s) (?=been\b|got\b|had\b)"
    r"|('s)\b)",
    re.I,
)
_FULL = {"m": "am", "re": "are", "ll": "will", "ve": "have"}


def written_out(text: str) -> str:
    """Contractions written out; ``'s`` becomes "has" before "been"/"got"/"had", else "is"."""

    def negation(match: re.Match[str]) -> str:
        return f"{match.group(1)} not"

    def contraction(match: re.Match[str]) -> str:
        word = match.group(1)
        if match.group(2):
            return f"{word} {_FULL[match.group(2).lower()]}"
        if match.group(3):
            return f"{word} has "
        if word.lower() in ("he", "she", "it", "that", "there", "what", "who"):
            return f"{word} is"
        return match.group()

    return _CONTRACTED.sub(contraction, _NOT.sub(negation, text))
