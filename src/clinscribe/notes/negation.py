"""Is a finding affirmed, negated or uncertain? A small ConText-style trigger/scope reader.

ConText (Harkema et al., 2009; medspaCy's ``ConText``) marks a finding negated or uncertain when
a trigger phrase ("no", "denies", "might") is before it (or after it, for "... is negative")
with no terminator ("but", "however") in between, within a window of words. medspaCy 1.3.1 was
tried and not adopted: on Python 3.11 it pins spaCy < 3.8, whose thinc needs numpy < 2 (this
project runs numpy 2), with ~280 MB of dependencies. The verifier's NegEx (``negspacy``, see
``assertion.py``) needs entity spans and a spaCy pipeline; the writer's needs are smaller and
specific to speech, where the commonest negation is a bare "No." answering a question
(:func:`answer_polarity`), so the writer reads triggers and scopes itself, as documented here.

The trigger lists below are the ConText ones that occur in speech, plus spoken forms
("i don't have", "not that i've noticed", "i'm not sure").
"""

from __future__ import annotations

import re
from typing import Literal

from clinscribe.notes.clinical_terms import words

Assertion = Literal["affirmed", "negated", "uncertain"]
Polarity = Literal["yes", "no", "unsure"]

# How many words after a forward trigger it can reach (ConText's default window is similar).
SCOPE_WORDS = 8

# fmt: off
# Forward triggers: they bear on what follows.
NEGATION_TRIGGERS: tuple[str, ...] = (
    "no", "not", "never", "without", "denies", "denied", "deny", "none", "nor", "neither",
    "negative for", "free of", "absence of", "no sign of", "no signs of", "no evidence of",
    "no history of", "not any", "nothing",
    "don't", "do n't", "doesn't", "does n't", "didn't", "did n't", "haven't", "have n't",
    "hasn't", "has n't", "hadn't", "had n't", "isn't", "is n't", "aren't", "are n't",
    "wasn't", "was n't", "weren't", "were n't", "can't", "ca n't", "cannot", "won't", "wo n't",
)
UNCERTAINTY_TRIGGERS: tuple[str, ...] = (
    "maybe", "might", "may", "possibly", "possible", "probably", "perhaps", "could be",
    "not sure", "unsure", "i think", "i guess", "i believe", "questionable", "suspect",
    "suspected", "rule out", "concern for", "kind of", "sort of", "i don't know", "i do n't know",
)
# Backward triggers: they bear on what came before ("fever is negative").
NEGATION_AFTER: tuple[str, ...] = ("is negative", "was negative", "were negative", "resolved",
                                   "is gone", "went away", "ruled out")
# A terminator ends a trigger's scope: "no fever but some cough" negates only fever.
TERMINATORS: tuple[str, ...] = ("but", "however", "although", "though", "except", "aside from",
                                "apart from", "other than", "which", "that's why", "because",
                                "since", "so", "and then", "yet")
# Answers to a yes/no question, matched at the start of the answer.
_NO = (r"no|nope|nah|not really|not at all|never|none|nothing|negative|not that i(?:'ve| have)?"
       r"(?: know| noticed| recall| remember)?|i (?:do|did|have|had|am|was|does)(?: ?n't| not)"
       r"|i'm not|not (?:anymore|lately|recently)")
_YES = (r"(?:yes|yeah|yep|yup|uh-huh|mm-hmm|mhm|i do|i did|i have|i am|i'm|correct|definitely"
        r"|absolutely|sometimes|occasionally|a little|a bit|kind of|sort of|a lot|it is|it does)"
        r"(?! ?n't| not)")
_UNSURE = (r"maybe|i'm not sure|i am not sure|not sure|i don't know|i do n't know|possibly"
           r"|i think so|perhaps|i guess|probably|i'm not certain|hard to say")
# fmt: on
_ANSWER = re.compile(rf"^(?:(?P<unsure>{_UNSURE})|(?P<no>{_NO})|(?P<yes>{_YES}))\b")


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(phrases, key=len, reverse=True)  # longest first: "no history of" > "no"
    return re.compile(r"(?<![\w'])(?:" + "|".join(map(re.escape, ordered)) + r")(?![\w'])")


_NEGATION = _phrase_pattern(NEGATION_TRIGGERS)
_UNCERTAINTY = _phrase_pattern(UNCERTAINTY_TRIGGERS)
_NEGATION_AFTER = _phrase_pattern(NEGATION_AFTER)
_TERMINATOR = _phrase_pattern(TERMINATORS)
_CLAUSE_END = re.compile(r"[.;:?!]")


def assertion(text: str, target: str) -> Assertion:
    """Whether ``target`` (a word or phrase found in ``text``) is affirmed, negated or uncertain.

    Negation wins over uncertainty ("I don't think I have a fever" is a denial, softly). A target
    not found in the text is affirmed: nothing bears on it.
    """
    lowered = " ".join(text.lower().split())
    at = re.search(r"(?<![\w'])" + re.escape(target.lower()) + r"(?![\w'])", lowered)
    if at is None:
        return "affirmed"
    before = _scope_before(lowered[: at.start()])
    after = _CLAUSE_END.split(lowered[at.end() :], maxsplit=1)[0]
    after = _TERMINATOR.split(after, maxsplit=1)[0]
    if _NEGATION.search(before) or _NEGATION_AFTER.match(after.strip()):
        return "negated"
    if _UNCERTAINTY.search(before):
        return "uncertain"
    return "affirmed"


def _scope_before(text: str) -> str:
    """The words before a target that a forward trigger there could still reach."""
    clause = _CLAUSE_END.split(text)[-1]
    clause = _TERMINATOR.split(clause)[-1]
    # A comma alone does not end a scope ("no chest pain, shortness of breath"), but the window
    # does: a trigger many words back bears on something else.
    kept = clause.split()
    return " ".join(kept[-SCOPE_WORDS:])


def bears_on_what_follows(text: str) -> bool:
    """Whether a negation or hedge trigger near the end of ``text`` still reaches past its end
    ("there's no evidence of", "it could be"): the words after belong to its scope."""
    before = _scope_before(" ".join(text.lower().split()) + " ")
    return bool(_NEGATION.search(before) or _UNCERTAINTY.search(before))


def is_negated_sentence(text: str) -> bool:
    """Whether the sentence contains any negation trigger (a cheap pre-check)."""
    return _NEGATION.search(" ".join(text.lower().split())) is not None


def answer_polarity(answer: str) -> Polarity | None:
    """How a reply answers a yes/no question: "No, not that I've noticed." -> "no"."""
    plain = " ".join(words(answer))
    match = _ANSWER.match(plain)
    if match is None:
        return None
    if match.group("unsure"):
        return "unsure"
    # A mixed or qualified answer is not a clean yes or no: "yeah, no, sorry, my other foot",
    # "no, just penicillin", "a little numbing, but nothing tingling".
    rest = plain[match.end() :]
    if match.group("no"):
        unclean = r"\b(?:but|except|sometimes|only|just|besides|other than|yes|yeah|i do)\b"
        return None if re.search(unclean, rest) else "no"
    unclean = r"\b(?:but|except|no|not|nothing|never|none|n't)\b|n't\b"
    return None if re.search(unclean, rest) else "yes"
