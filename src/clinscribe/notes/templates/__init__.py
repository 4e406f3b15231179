"""Note templates: the built-in ones and clinic-defined ones read from TOML files.

Built-in: ``soap`` (default), ``apso``, ``hp`` (history and physical) and ``progress``.
Clinic-defined templates live in ``CLINSCRIBE_TEMPLATES_DIR`` (default ``<data dir>/templates``),
one ``<key>.toml`` file each; the format is documented in docs/note-templates.md and checked
at start, so a broken file stops the service with a message naming the file and the field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinscribe.errors import BadRequest, ConfigurationError
from clinscribe.notes.model import FACT_KINDS, FactKind, NoteTemplate, SectionSpec

_SUBJECTIVE: tuple[FactKind, ...] = (
    "chief_complaint",
    "history",
    "past_history",
    "medications",
    "allergies",
    "social_family",
    "review_of_systems",
)
_OBJECTIVE: tuple[FactKind, ...] = ("vitals", "exam", "results")

SUBJECTIVE = SectionSpec(
    "subjective",
    "Subjective",
    "Symptoms, history and concerns the patient reports; medications and allergies.",
    _SUBJECTIVE,
)
OBJECTIVE = SectionSpec(
    "objective", "Objective", "Vital signs, examination findings, test results.", _OBJECTIVE
)
ASSESSMENT = SectionSpec(
    "assessment", "Assessment", "Diagnoses and the clinician's impression.", ("assessment",)
)
PLAN = SectionSpec(
    "plan",
    "Plan",
    "Medications, tests, referrals, advice and follow-up.",
    ("plan", "follow_up"),
)

SOAP = NoteTemplate(
    key="soap", title="SOAP note", sections=(SUBJECTIVE, OBJECTIVE, ASSESSMENT, PLAN)
)
APSO = NoteTemplate(
    key="apso", title="APSO note", sections=(ASSESSMENT, PLAN, SUBJECTIVE, OBJECTIVE)
)
HISTORY_AND_PHYSICAL = NoteTemplate(
    key="hp",
    title="History and physical",
    sections=(
        SectionSpec(
            "chief_complaint",
            "Chief complaint",
            "The main reason for the visit in the patient's words.",
            ("chief_complaint",),
        ),
        SectionSpec(
            "hpi",
            "History of present illness",
            "Onset, duration, character and course of the current problem.",
            ("history",),
        ),
        SectionSpec(
            "past_history",
            "Past medical history",
            "Earlier illnesses, operations and chronic conditions.",
            ("past_history",),
        ),
        SectionSpec("medications", "Medications", "Current medicines with dose.", ("medications",)),
        SectionSpec("allergies", "Allergies", "Drug and other allergies.", ("allergies",)),
        SectionSpec(
            "social_family",
            "Social and family history",
            "Smoking, alcohol, occupation, family illnesses.",
            ("social_family",),
        ),
        SectionSpec(
            "review_of_systems",
            "Review of systems",
            "Symptoms asked about, including pertinent negatives.",
            ("review_of_systems",),
        ),
        SectionSpec(
            "physical_exam",
            "Physical examination",
            "Vital signs and examination findings.",
            ("vitals", "exam"),
        ),
        SectionSpec("results", "Results", "Laboratory and imaging results.", ("results",)),
        ASSESSMENT,
        PLAN,
    ),
)
PROGRESS = NoteTemplate(
    key="progress",
    title="Progress note",
    sections=(
        SectionSpec(
            "interval_history",
            "Interval history",
            "What changed since the last visit; current symptoms and pertinent negatives.",
            ("chief_complaint", "history", "review_of_systems", "past_history", "social_family"),
        ),
        SectionSpec(
            "medications",
            "Medications and allergies",
            "Current medicines, changes, adherence; allergies.",
            ("medications", "allergies"),
        ),
        SectionSpec(
            "exam", "Examination and results", "Vital signs, findings, results.", _OBJECTIVE
        ),
        ASSESSMENT,
        PLAN,
    ),
)

BUILT_IN: dict[str, NoteTemplate] = {t.key: t for t in (SOAP, APSO, HISTORY_AND_PHYSICAL, PROGRESS)}


def get_template(key: str) -> NoteTemplate:
    """A built-in template (clinic-defined ones: :class:`TemplateLibrary`)."""
    return TemplateLibrary().get(key)


class TemplateLibrary:
    """The templates this deployment offers: built-in plus clinic-defined."""

    def __init__(self, custom: dict[str, NoteTemplate] | None = None) -> None:
        self.templates = {**BUILT_IN, **(custom or {})}

    @classmethod
    def from_directory(cls, directory: Path | None) -> TemplateLibrary:
        if directory is None or not directory.is_dir():
            return cls()
        return cls({t.key: t for t in map(load_template_file, sorted(directory.glob("*.toml")))})

    def keys(self) -> list[str]:
        return sorted(self.templates)

    def has(self, key: str) -> bool:
        return key in self.templates

    def all(self) -> list[NoteTemplate]:
        return [self.templates[key] for key in self.keys()]

    def get(self, key: str) -> NoteTemplate:
        try:
            return self.templates[key]
        except KeyError:
            raise BadRequest(
                f"Unknown note template '{key[:40]}'. Use one of: {', '.join(self.keys())}.",
                code="unknown_template",
            ) from None


# --- clinic-defined templates -----------------------------------------------------------------
class _SectionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    title: str = Field(min_length=1, max_length=100)
    guidance: str = Field("", max_length=1000)
    collects: list[FactKind] = Field(default_factory=list)


class _TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    title: str = Field(min_length=1, max_length=100)
    style: str = Field("", max_length=1000)
    sections: list[_SectionFile] = Field(min_length=1, max_length=30)

    @field_validator("sections")
    @classmethod
    def _unique_keys(cls, sections: list[_SectionFile]) -> list[_SectionFile]:
        keys = [s.key for s in sections]
        if len(keys) != len(set(keys)):
            raise ValueError("section keys must be unique")
        return sections


def load_template_file(path: Path) -> NoteTemplate:
    """Read and check one template file; errors name the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _TemplateFile.model_validate(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"Note template {path.name}: cannot read it ({error}).") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise ConfigurationError(
            f"Note template {path.name} is not valid: {problems}. Section 'collects' may list: "
            f"{', '.join(FACT_KINDS)}."
        ) from None
    if parsed.key in BUILT_IN:
        raise ConfigurationError(
            f"Note template {path.name} uses the key '{parsed.key}' of a built-in template; "
            "choose another key."
        )
    if path.stem != parsed.key:
        raise ConfigurationError(
            f"Note template {path.name} must be named {parsed.key}.toml (its key)."
        )
    return NoteTemplate(
        key=parsed.key,
        title=parsed.title,
        style=parsed.style,
        sections=tuple(
            SectionSpec(s.key, s.title, s.guidance, tuple(s.collects)) for s in parsed.sections
        ),
    )
