"""Findings a note may state: symptoms and signs, diagnoses, body parts, as synonym groups.

Used by the verifier and the omission finder. A note sentence *mentions* a finding when one of
its phrases occurs in the sentence (word stems, grammar words skipped); the evidence *supports*
it when every word of one of its phrases occurs in the evidence, in any order ("pain in my
chest" supports "chest pain"). The lists favour the words patients and clinicians say in
consultations; a finding not listed here is simply not checked, never flagged.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

from clinscribe.notes.clinical_terms import FindingKind, content_stems

# fmt: off
SYMPTOMS: dict[str, tuple[str, ...]] = {
    "chest pain": ("chest pain", "chest discomfort", "chest tightness", "pain in chest", "angina"),
    "dyspnea": ("shortness of breath", "short of breath", "sob", "dyspnea", "trouble breathing",
                "difficulty breathing", "hard to breathe", "breathless", "winded"),
    "cough": ("cough", "coughing"),
    "fever": ("fever", "febrile", "feverish"),
    "chills": ("chills", "rigors"),
    "night sweats": ("night sweats", "sweats", "sweating"),
    "nausea": ("nausea", "nauseous", "nauseated", "queasy"),
    "vomiting": ("vomiting", "vomit", "throwing up", "threw up", "emesis"),
    "diarrhea": ("diarrhea", "loose stools", "loose stool", "diarrhoea"),
    "constipation": ("constipation", "constipated"),
    "abdominal pain": ("abdominal pain", "stomach pain", "belly pain", "stomachache",
                       "stomach ache", "abdominal discomfort"),
    "headache": ("headache", "head pain", "migraine"),
    "dizziness": ("dizziness", "dizzy", "lightheaded", "light headed", "lightheadedness",
                  "vertigo"),
    "fatigue": ("fatigue", "tired", "tiredness", "exhausted", "exhaustion", "lethargy",
                "lethargic", "low energy"),
    "weakness": ("weakness", "weak"),
    "numbness": ("numbness", "numb"),
    "tingling": ("tingling", "pins and needles", "paresthesia", "paresthesias"),
    "palpitations": ("palpitations", "palpitation", "heart racing", "racing heart",
                     "heart pounding", "fluttering"),
    "wheezing": ("wheezing", "wheeze", "wheezes"),
    "sore throat": ("sore throat", "throat pain", "pharyngitis"),
    "nasal congestion": ("congestion", "congested", "stuffy nose", "runny nose", "rhinorrhea",
                         "stuffy"),
    "rash": ("rash", "rashes", "hives", "eruption"),
    "itching": ("itching", "itchy", "itch", "pruritus"),
    "swelling": ("swelling", "swollen", "edema", "puffy", "fluid in legs"),
    "bruising": ("bruising", "bruise", "bruised", "ecchymosis"),
    "bleeding": ("bleeding", "blood in stool", "blood in urine", "hematuria", "hematochezia",
                 "melena", "bloody"),
    "weight loss": ("weight loss", "lost weight", "losing weight"),
    "weight gain": ("weight gain", "gained weight", "gaining weight"),
    "insomnia": ("insomnia", "trouble sleeping", "can't sleep", "difficulty sleeping"),
    "blurred vision": ("blurred vision", "blurry vision", "vision changes", "double vision"),
    "dysuria": ("dysuria", "burning with urination", "painful urination",
                "burning when urinate"),
    "urinary frequency": ("urinary frequency", "frequent urination", "urinating more"),
    "heartburn": ("heartburn", "acid reflux", "indigestion"),
    "syncope": ("syncope", "fainting", "fainted", "passed out", "blacked out"),
    "stiffness": ("stiffness", "stiff"),
    "tenderness": ("tenderness", "tender"),
    "murmur": ("murmur", "murmurs"),
    "crackles": ("crackles", "rales"),
    "limp": ("limp", "limping"),
    "anxiety": ("anxiety", "anxious", "panic"),
    "confusion": ("confusion", "confused", "disoriented"),
    "seizure": ("seizure", "seizures", "convulsion", "convulsions"),
    "loss of appetite": ("loss of appetite", "poor appetite", "decreased appetite",
                         "not hungry"),
}

DIAGNOSES: dict[str, tuple[str, ...]] = {
    "hypertension": ("hypertension", "high blood pressure", "htn"),
    "hypotension": ("hypotension", "low blood pressure"),
    "diabetes": ("diabetes", "diabetic", "dm", "type 2 diabetes", "high blood sugar"),
    "hyperlipidemia": ("hyperlipidemia", "high cholesterol", "dyslipidemia",
                       "hypercholesterolemia"),
    "heart failure": ("heart failure", "chf", "congestive heart failure", "hfref", "hfpef"),
    "atrial fibrillation": ("atrial fibrillation", "afib", "a fib", "a-fib"),
    "coronary artery disease": ("coronary artery disease", "cad"),
    "myocardial infarction": ("myocardial infarction", "heart attack", "mi", "stemi", "nstemi"),
    "stroke": ("stroke", "cva", "tia", "transient ischemic attack"),
    "asthma": ("asthma", "asthmatic"),
    "copd": ("copd", "emphysema", "chronic bronchitis", "chronic obstructive pulmonary disease"),
    "pneumonia": ("pneumonia",),
    "bronchitis": ("bronchitis",),
    "sinusitis": ("sinusitis", "sinus infection"),
    "urinary tract infection": ("urinary tract infection", "uti", "bladder infection",
                                "cystitis"),
    "kidney stone": ("kidney stone", "kidney stones", "nephrolithiasis", "renal colic"),
    "chronic kidney disease": ("chronic kidney disease", "ckd", "kidney disease",
                               "renal insufficiency"),
    "depression": ("depression", "depressed", "depressive"),
    "arthritis": ("arthritis", "osteoarthritis", "rheumatoid arthritis", "oa", "ra"),
    "gout": ("gout", "gouty"),
    "fracture": ("fracture", "fractured", "broken"),
    "sprain": ("sprain", "sprained"),
    "strain": ("strain", "strained"),
    "tendinitis": ("tendinitis", "tendonitis", "tendinopathy"),
    "concussion": ("concussion",),
    "cancer": ("cancer", "carcinoma", "malignancy", "tumor", "tumour", "lymphoma", "melanoma",
               "leukemia"),
    "anemia": ("anemia", "anaemia", "anemic"),
    "hypothyroidism": ("hypothyroidism", "underactive thyroid", "low thyroid"),
    "hyperthyroidism": ("hyperthyroidism", "overactive thyroid"),
    "gerd": ("gerd", "reflux", "gastroesophageal reflux"),
    "covid": ("covid", "covid-19", "coronavirus"),
    "influenza": ("influenza", "flu"),
    "obesity": ("obesity", "obese", "overweight"),
    "sleep apnea": ("sleep apnea", "osa", "apnea"),
    "infection": ("infection", "infected", "cellulitis", "abscess"),
    "allergy": ("allergy", "allergies", "allergic"),
    "eczema": ("eczema", "dermatitis", "atopic dermatitis"),
    "psoriasis": ("psoriasis",),
    "acne": ("acne",),
    "hernia": ("hernia",),
    "gallstones": ("gallstones", "gallstone", "cholelithiasis", "cholecystitis"),
    "appendicitis": ("appendicitis",),
    "pancreatitis": ("pancreatitis",),
    "hepatitis": ("hepatitis", "cirrhosis", "fatty liver"),
    "osteoporosis": ("osteoporosis", "osteopenia"),
    "neuropathy": ("neuropathy", "neuropathic"),
    "carpal tunnel": ("carpal tunnel",),
    "sciatica": ("sciatica", "radiculopathy"),
    "dementia": ("dementia", "alzheimer's", "alzheimers", "memory loss"),
    "epilepsy": ("epilepsy",),
    "lupus": ("lupus", "sle"),
    "multiple sclerosis": ("multiple sclerosis",),
}

ANATOMY: dict[str, tuple[str, ...]] = {
    "head": ("head", "scalp"), "neck": ("neck", "cervical"),
    "shoulder": ("shoulder", "rotator cuff"), "elbow": ("elbow",), "wrist": ("wrist",),
    "hand": ("hand", "palm"), "finger": ("finger", "thumb"),
    "chest": ("chest", "thorax", "thoracic"),
    "abdomen": ("abdomen", "abdominal", "stomach", "belly", "tummy"),
    "back": ("back", "lumbar", "spine", "spinal"), "hip": ("hip", "groin"),
    "knee": ("knee", "patella", "kneecap"), "ankle": ("ankle",), "foot": ("foot", "feet", "heel"),
    "toe": ("toe",), "leg": ("leg", "calf", "thigh", "shin", "lower extremity"),
    "arm": ("arm", "forearm", "upper extremity"), "eye": ("eye", "eyes", "vision"),
    "ear": ("ear", "ears", "hearing"), "throat": ("throat",), "nose": ("nose", "nasal", "sinus"),
    "mouth": ("mouth", "tongue", "teeth", "tooth", "gums"), "skin": ("skin",),
    "heart": ("heart", "cardiac"), "lung": ("lung", "lungs", "pulmonary"),
    "kidney": ("kidney", "renal"), "liver": ("liver", "hepatic"),
    "bladder": ("bladder", "urinary"), "bowel": ("bowel", "colon", "intestine"),
}
# fmt: on

LATERALITY: frozenset[str] = frozenset({"left", "right"})


@dataclass(frozen=True)
class Finding:
    name: str
    kind: FindingKind
    phrases: tuple[tuple[str, ...], ...]  # each phrase as its content stems


@functools.cache
def finding_index() -> tuple[dict[tuple[str, ...], Finding], int]:
    """Content-stem phrase -> finding, and the longest phrase length (built once)."""
    index: dict[tuple[str, ...], Finding] = {}
    groups: list[tuple[FindingKind, dict[str, tuple[str, ...]]]] = [
        ("symptom", SYMPTOMS),
        ("diagnosis", DIAGNOSES),
        ("anatomy", ANATOMY),
    ]
    for kind, lexicon in groups:
        for name, phrases in lexicon.items():
            stems = dict.fromkeys(tuple(content_stems(phrase)) for phrase in phrases)
            finding = Finding(name, kind, tuple(s for s in stems if s))
            for phrase in finding.phrases:
                index.setdefault(phrase, finding)
    return index, max(len(phrase) for phrase in index)


def findings_in(stems: list[str]) -> list[tuple[int, int, Finding]]:
    """(start, end, finding) of each finding in a content-stem sequence, longest match first."""
    index, longest = finding_index()
    found: list[tuple[int, int, Finding]] = []
    i = 0
    while i < len(stems):
        for size in range(min(longest, len(stems) - i), 0, -1):
            finding = index.get(tuple(stems[i : i + size]))
            if finding is not None:
                found.append((i, i + size, finding))
                i += size
                break
        else:
            i += 1
    return found


def supported(finding: Finding, evidence_stems: Collection[str]) -> bool:
    """Whether every word of one of the finding's phrases occurs in the evidence."""
    return any(all(s in evidence_stems for s in phrase) for phrase in finding.phrases)
