"""Who is acting: a signed-in user, an integration's API key, or clinscribe itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clinscribe.models import Role

ActorType = Literal["user", "api_key", "system"]


@dataclass(frozen=True, kw_only=True)
class Actor:
    """What the audit log records about whoever did something."""

    actor_type: ActorType
    actor_id: str | None
    label: str
    clinic_id: str | None
    ip: str | None = None


@dataclass(frozen=True, kw_only=True)
class Principal(Actor):
    """An authenticated caller of the API, always acting inside exactly one clinic."""

    clinic_id: str
    role: Role
    display_name: str
    # Web sessions only: the token state-changing requests must echo (X-CSRF-Token).
    csrf_token: str | None = None
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def system_actor(clinic_id: str | None, label: str) -> Actor:
    return Actor(actor_type="system", actor_id=None, label=label, clinic_id=clinic_id)
