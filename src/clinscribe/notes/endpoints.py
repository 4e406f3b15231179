"""GET /api/templates: the note templates this deployment offers (built-in and clinic-defined)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from clinscribe.auth.dependencies import PrincipalDep, RuntimeDep
from clinscribe.notes.model import NoteTemplate

router = APIRouter(prefix="/api", tags=["notes"])


class SectionOut(BaseModel):
    key: str
    title: str
    guidance: str


class TemplateOut(BaseModel):
    key: str
    title: str
    sections: list[SectionOut]

    @classmethod
    def of(cls, template: NoteTemplate) -> TemplateOut:
        return cls(
            key=template.key,
            title=template.title,
            sections=[
                SectionOut(key=s.key, title=s.title, guidance=s.guidance) for s in template.sections
            ],
        )


@router.get("/templates", response_model=list[TemplateOut], summary="Note templates to choose from")
async def list_templates(runtime: RuntimeDep, _principal: PrincipalDep) -> list[TemplateOut]:
    return [TemplateOut.of(template) for template in runtime.templates.all()]
