"""Authorization matrix: every operation of the running service x every kind of caller.

The operations come from the service's own ``GET /openapi.json`` (plus the routes it does not
list: /openapi.json, /docs and the HTML pages). Each one must be classified in ``OPERATIONS``: a
new endpoint that is not fails this test, so it cannot ship unchecked.

Expected, for every protected operation:
    no / garbage / revoked / malformed credentials, unknown session  -> 401, an error body only
    a web session without the X-CSRF-Token header, unsafe method     -> 403 csrf_failed
    a clinician on an admin-only operation                           -> 403 admin_only
    another clinic's id (consultation, API key, user, webhook,       -> 404, the very same answer
    a webhook delivery under the caller's own webhook)                  as for an id that does not
                                                                        exist
    the caller's own clinic                                          -> the operation's success
And for every answer: no id, email or name of a clinic other than the caller's appears in it.

Cases run in this order so destructive ones break nothing: pages, then every read and
non-destructive write (caller by caller), then the deletions and revocations (each with its own
target), then checks that what other clinics tried to delete is still there.
"""

from __future__ import annotations

import io
import re
import time
import uuid
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinscribe.models import Role
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.accounts import TEST_PASSWORD, Account, bearer
from tests.support.audio import SHORT_WAV
from tests.support.server import TERMINAL, ServerProcess, fake_stt_env, free_port

pytestmark = pytest.mark.slow

OWN, OTHER = "Test Clinic", "Other Clinic"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
# The matrix sends several hundred requests from one address in seconds; rate limits have
# their own tests.
GENEROUS_LIMITS = {
    "CLINSCRIBE_IP_REQUESTS_PER_MINUTE": "1000000",
    "CLINSCRIBE_API_REQUESTS_PER_MINUTE": "1000000",
}
# Webhooks point at a closed port on loopback (allowed for this server only): deliveries are
# attempted and fail, nothing is sent beyond this machine.
HOOK_URL = f"http://127.0.0.1:{free_port()}/hooks"
LOOPBACK_WEBHOOKS = {"CLINSCRIBE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true"}
Outcome = tuple[int, str | None]  # status, error code (None: any, or a success)


class Access(Enum):
    PUBLIC = "public"
    AUTHENTICATED = "any authenticated caller"
    ADMIN = "clinic admins only"


class Owned(Enum):
    """The clinic-owned id in an operation's path; the value is its not-found error code."""

    CONSULTATION = "consultation_not_found"
    API_KEY = "api_key_not_found"
    USER = "user_not_found"
    WEBHOOK = "webhook_not_found"
    DELIVERY = "delivery_not_found"  # under the caller's own webhook


@dataclass
class ClinicData:
    name: str
    clinic_id: str = ""
    consultation: str = ""  # completed; shared by every non-destructive case
    to_delete: dict[str, str] = field(default_factory=dict)  # caller name -> its own to delete
    staff_user: str = ""  # a user admins PATCH
    victim_key: str = ""  # an API key admins revoke
    webhook: str = ""  # a subscription with deliveries, shared by non-destructive cases
    delivery: str = ""  # one of its deliveries
    webhooks_to_delete: dict[str, str] = field(default_factory=dict)  # admin caller -> its own
    markers: set[str] = field(default_factory=set)  # must never reach another clinic's callers


@dataclass
class World:
    clinics: dict[str, ClinicData]
    counter: int = 0

    def foreign_to(self, clinic: str | None) -> ClinicData:
        """The clinic whose ids a caller tries but must not reach (no clinic: Test Clinic)."""
        return self.clinics[OTHER if clinic == OWN else OWN]

    def unique(self) -> int:
        self.counter += 1
        return self.counter


@dataclass(frozen=True)
class Payload:
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str | int] = field(default_factory=dict)


Check = Callable[[httpx.Response, ClinicData], str | None]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # exactly as in the OpenAPI schema
    access: Access
    owned: Owned | None = None
    ok: tuple[Outcome, ...] = ((200, None),)  # what a caller of the owning clinic gets
    # The request's body, headers, query; given the world and the clinic foreign to the caller.
    request: Callable[[World, ClinicData], Payload] | None = None
    variant: str = ""
    destructive: bool = False
    check: Check | None = None  # more about a successful answer to the owning clinic
    in_schema: bool = True

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.variant})" if self.variant else "")


def _tiny_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 8000)
    return buffer.getvalue()


TINY_WAV = _tiny_wav()


def _shows(pick: Callable[[ClinicData], str]) -> Check:
    def check(response: httpx.Response, clinic: ClinicData) -> str | None:
        return None if pick(clinic) in response.text else f"does not show {pick(clinic)}"

    return check


def _event_stream(response: httpx.Response, clinic: ClinicData) -> str | None:
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return "not an event stream"
    return None if "event: status" in response.text else "no status event"


def _whole_audio(response: httpx.Response, clinic: ClinicData) -> str | None:
    return None if response.content[:4] == b"fLaC" else "not a FLAC file"


def _first_100_bytes(response: httpx.Response, clinic: ClinicData) -> str | None:
    if len(response.content) != 100 or response.content[:4] != b"fLaC":
        return f"{len(response.content)} bytes, not the first 100 of the FLAC"
    return None


def _no_items(response: httpx.Response, clinic: ClinicData) -> str | None:
    return None if response.json()["items"] == [] else "lists another clinic's audit events"


def _fhir_document(response: httpx.Response, clinic: ClinicData) -> str | None:
    if response.headers.get("content-type") != "application/fhir+json":
        return "not FHIR JSON"
    return None if response.json().get("type") == "document" else "not a document Bundle"


def _pdf(response: httpx.Response, clinic: ClinicData) -> str | None:
    return None if response.content.startswith(b"%PDF-") else "not a PDF"


def _plain_text(response: httpx.Response, clinic: ClinicData) -> str | None:
    return None if response.headers.get("content-type", "").startswith("text/plain") else "not text"


NOTE_EDIT = {
    "sections": [
        {
            "key": "subjective",
            "title": "Subjective",
            "sentences": [{"text": "Cough for about a week.", "evidence": ["u2"]}],
        }
    ]
}
CONSULTATION = "/api/consultations/{consultation_id}"
WEBHOOK = "/api/webhooks/{webhook_id}"
AUTH, ADMIN = Access.AUTHENTICATED, Access.ADMIN

# Every operation, in the order each caller runs them (PUT note before sign: the sign then finds
# a fresh draft). A path with an id must say whose id it is.
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", Access.PUBLIC),
    Operation("GET", "/readyz", Access.PUBLIC),
    Operation("GET", "/metrics", Access.PUBLIC),
    Operation("GET", "/openapi.json", Access.PUBLIC, in_schema=False),
    Operation("GET", "/docs", Access.PUBLIC, in_schema=False),
    Operation("GET", "/api/me", AUTH, check=_shows(lambda c: c.clinic_id)),
    Operation("GET", "/api/templates", AUTH),
    Operation(
        "POST",
        "/api/consultations",
        AUTH,
        ok=((202, None),),
        request=lambda w, foreign: Payload(files={"audio": ("visit.wav", TINY_WAV, "audio/wav")}),
    ),
    Operation(
        "GET",
        "/api/consultations",
        AUTH,
        request=lambda w, foreign: Payload(params={"limit": 100}),
        check=_shows(lambda c: c.consultation),
    ),
    Operation(
        "GET", CONSULTATION, AUTH, Owned.CONSULTATION, check=_shows(lambda c: c.consultation)
    ),
    Operation("GET", f"{CONSULTATION}/events", AUTH, Owned.CONSULTATION, check=_event_stream),
    Operation("GET", f"{CONSULTATION}/transcript", AUTH, Owned.CONSULTATION),
    Operation("GET", f"{CONSULTATION}/audio", AUTH, Owned.CONSULTATION, check=_whole_audio),
    Operation(
        "GET",
        f"{CONSULTATION}/audio",
        AUTH,
        Owned.CONSULTATION,
        ok=((206, None),),
        request=lambda w, foreign: Payload(headers={"Range": "bytes=0-99"}),
        variant="Range: bytes=0-99",
        check=_first_100_bytes,
    ),
    Operation(
        "PATCH",
        f"{CONSULTATION}/transcript/utterances/{{utterance_id}}",
        AUTH,
        Owned.CONSULTATION,
        request=lambda w, foreign: Payload(json={"speaker": "doctor"}),
    ),
    Operation("GET", f"{CONSULTATION}/note", AUTH, Owned.CONSULTATION),
    Operation("GET", f"{CONSULTATION}/note/summary", AUTH, Owned.CONSULTATION),
    # The short test clip names no diagnosis, so its note has no code to decide on.
    Operation(
        "PATCH",
        f"{CONSULTATION}/note/codes/{{code}}",
        AUTH,
        Owned.CONSULTATION,
        ok=((404, "code_not_found"),),
        request=lambda w, foreign: Payload(json={"status": "accepted"}),
    ),
    Operation(
        "PUT",
        f"{CONSULTATION}/note",
        AUTH,
        Owned.CONSULTATION,
        request=lambda w, foreign: Payload(json=NOTE_EDIT),
    ),
    Operation(
        "POST",
        f"{CONSULTATION}/note/sign",
        AUTH,
        Owned.CONSULTATION,
        request=lambda w, foreign: Payload(json={"signed_by": "Dr Matrix"}),
    ),
    Operation("GET", f"{CONSULTATION}/note/fhir", AUTH, Owned.CONSULTATION, check=_fhir_document),
    # Signed just before by this caller; a caller that could not sign (no CSRF token) finds the
    # previous caller's regenerated draft: 409 not_signed, after the clinic's lookup (404).
    Operation(
        "GET",
        f"{CONSULTATION}/note/pdf",
        AUTH,
        Owned.CONSULTATION,
        ok=((200, None), (409, "not_signed")),
        check=_pdf,
    ),
    Operation("GET", f"{CONSULTATION}/note/text", AUTH, Owned.CONSULTATION, check=_plain_text),
    Operation(
        "POST",
        f"{CONSULTATION}/note/regenerate",
        AUTH,
        Owned.CONSULTATION,
        request=lambda w, foreign: Payload(json={"template": "soap"}),
    ),
    # A completed consultation cannot be retried: 409 comes after the clinic's lookup (404).
    Operation(
        "POST", f"{CONSULTATION}/retry", AUTH, Owned.CONSULTATION, ok=((409, "not_retryable"),)
    ),
    Operation("GET", "/api/api-keys", ADMIN, check=_shows(lambda c: c.victim_key)),
    Operation(
        "POST",
        "/api/api-keys",
        ADMIN,
        ok=((201, None),),
        request=lambda w, foreign: Payload(json={"name": "matrix key", "role": "clinician"}),
    ),
    Operation("GET", "/api/users", ADMIN, check=_shows(lambda c: c.staff_user)),
    Operation(
        "POST",
        "/api/users",
        ADMIN,
        ok=((201, None),),
        request=lambda w, foreign: Payload(
            json={
                "email": f"matrix-{w.unique()}@example.org",
                "name": "Matrix User",
                "password": TEST_PASSWORD,
            }
        ),
    ),
    Operation(
        "PATCH",
        "/api/users/{user_id}",
        ADMIN,
        Owned.USER,
        request=lambda w, foreign: Payload(json={"unlock": True}),
    ),
    Operation(
        "GET",
        "/api/audit",
        ADMIN,
        request=lambda w, foreign: Payload(params={"limit": 200}),
        check=_shows(lambda c: c.consultation),
    ),
    Operation(
        "GET",
        "/api/audit",
        ADMIN,
        request=lambda w, foreign: Payload(params={"consultation_id": foreign.consultation}),
        variant="filtered by another clinic's consultation",
        check=_no_items,
    ),
    Operation("DELETE", CONSULTATION, AUTH, Owned.CONSULTATION, ((204, None),), destructive=True),
    Operation("GET", "/api/webhooks", ADMIN, check=_shows(lambda c: c.webhook)),
    Operation(
        "POST",
        "/api/webhooks",
        ADMIN,
        ok=((201, None),),
        request=lambda w, foreign: Payload(
            json={"url": f"{HOOK_URL}/new", "events": ["note.signed"], "enabled": False}
        ),
    ),
    Operation("GET", WEBHOOK, ADMIN, Owned.WEBHOOK, check=_shows(lambda c: c.webhook)),
    Operation(
        "PATCH",
        WEBHOOK,
        ADMIN,
        Owned.WEBHOOK,
        request=lambda w, foreign: Payload(json={"description": "matrix"}),
    ),
    Operation(
        "GET",
        f"{WEBHOOK}/deliveries",
        ADMIN,
        Owned.WEBHOOK,
        request=lambda w, foreign: Payload(params={"limit": 200}),
        check=_shows(lambda c: c.delivery),
    ),
    Operation(
        "POST",
        f"{WEBHOOK}/deliveries/{{delivery_id}}/redeliver",
        ADMIN,
        Owned.DELIVERY,
        ok=((202, None),),
        check=_shows(lambda c: c.delivery),  # redelivery_of
    ),
    Operation(
        "DELETE", "/api/api-keys/{key_id}", ADMIN, Owned.API_KEY, ((204, None),), destructive=True
    ),
    Operation("DELETE", WEBHOOK, ADMIN, Owned.WEBHOOK, ((204, None),), destructive=True),
)


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    clinic: str | None = None
    role: Role | None = None
    session: bool = False  # signed in to the web app (cookie)
    csrf: bool = True  # sends X-CSRF-Token (sessions only)
    rejected: str | None = None  # the 401 code it gets on every protected operation


@dataclass(frozen=True)
class Page:
    """An HTML route (not in the schema): what a signed-in and a signed-out browser get."""

    method: str
    path: str
    signed_in: tuple[int, str | None]  # status, Location
    signed_out: tuple[int, str | None]
    data: dict[str, str] | None = None


PAGES = (
    Page("GET", "/", signed_in=(200, None), signed_out=(303, "/sign-in")),
    Page("GET", "/sign-in", signed_in=(303, "/"), signed_out=(200, None)),
    Page(
        "GET",
        "/consultations/new",
        signed_in=(200, None),
        signed_out=(303, "/sign-in?next=%2Fconsultations%2Fnew"),
    ),
    Page("GET", "/consultations/rows", signed_in=(200, None), signed_out=(401, None)),
    Page(
        "GET",
        "/consultations/0123456789abcdef0123456789abcdef",
        signed_in=(404, None),
        signed_out=(303, "/sign-in?next=%2Fconsultations%2F0123456789abcdef0123456789abcdef"),
    ),
    # Without the form's token a sign-out is refused (and the session kept: later cases use it).
    Page("POST", "/sign-out", signed_in=(303, "/"), signed_out=(303, "/sign-in"), data={}),
    # Without the sign-in form's cookie + token pair, no sign-in whoever asks.
    Page(
        "POST",
        "/sign-in",
        signed_in=(403, None),
        signed_out=(403, None),
        data={"email": "own-admin@example.org", "password": TEST_PASSWORD, "csrf_token": "x"},
    ),
)


def expected(op: Operation, caller: Caller, target: str) -> tuple[Outcome, ...]:
    if op.access is Access.PUBLIC:
        return ((200, None),)
    if caller.rejected is not None:
        return ((401, caller.rejected),)
    if caller.session and not caller.csrf and op.method in UNSAFE:
        return ((403, "csrf_failed"),)
    if op.access is Access.ADMIN and caller.role is not Role.ADMIN:
        return ((403, "admin_only"),)
    if target in ("foreign", "missing"):
        assert op.owned is not None
        return ((404, op.owned.value),)
    return op.ok


def category(op: Operation, caller: Caller, target: str) -> str:
    status, code = expected(op, caller, target)[0]
    if op.access is Access.PUBLIC:
        return "public: 200"
    if status in (401, 403):
        return f"{status} {code}"
    if target in ("foreign", "missing"):
        return f"404 for a {target} id (same answer)"
    return "own clinic: allowed"


def targets(op: Operation, caller: Caller) -> tuple[str, ...]:
    if op.owned is None:
        return ("-",)
    return ("foreign", "missing", "home") if caller.clinic else ("foreign", "missing")


def target_id(world: World, op: Operation, caller: Caller, target: str) -> str:
    if target == "missing":
        return uuid.uuid4().hex
    clinic = world.foreign_to(caller.clinic)
    if target == "home":
        assert caller.clinic is not None
        clinic = world.clinics[caller.clinic]
    if op.owned is Owned.API_KEY:
        return clinic.victim_key
    if op.owned is Owned.USER:
        return clinic.staff_user
    if op.owned is Owned.WEBHOOK:
        if op.method == "DELETE" and target == "home":
            return clinic.webhooks_to_delete.get(caller.name, clinic.webhook)
        return clinic.webhook
    if op.owned is Owned.DELIVERY:
        return clinic.delivery
    if op.method == "DELETE" and target == "home":
        # Callers that must not delete (no CSRF token) aim at the shared one: checked at the end.
        return clinic.to_delete.get(caller.name, clinic.consultation)
    return clinic.consultation


def url_of(world: World, op: Operation, caller: Caller, target: str) -> str:
    if op.owned is None:
        return op.path
    resource = target_id(world, op, caller, target)
    path = op.path.replace("{utterance_id}", "u1").replace("{code}", "J20.9")
    if op.owned is Owned.DELIVERY:  # always under the caller's own webhook
        own = world.clinics[caller.clinic] if caller.clinic else world.foreign_to(None)
        path = path.replace("{webhook_id}", own.webhook)
    for name in ("{consultation_id}", "{key_id}", "{user_id}", "{webhook_id}", "{delivery_id}"):
        path = path.replace(name, resource)
    return path


def leaks(world: World, caller: Caller, response: httpx.Response) -> list[str]:
    text = response.content.decode("utf-8", "replace")
    foreign = [c for name, c in world.clinics.items() if name != caller.clinic]
    return sorted(marker for clinic in foreign for marker in clinic.markers if marker in text)


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
    if not isinstance(error, dict) or set(error) != {"code", "message"}:
        return None  # not exactly an error body: it may carry data
    return str(error["code"])


def send(client: httpx.Client, method: str, url: str, payload: Payload) -> httpx.Response:
    client.cookies.clear()  # a caller's credentials are exactly its headers
    return client.request(
        method,
        url,
        json=payload.json,
        data=payload.data,
        files=payload.files,
        headers=payload.headers,
        params=payload.params,
    )


def judge(
    world: World, op: Operation, caller: Caller, target: str, response: httpx.Response
) -> list[str]:
    problems = []
    allowed = expected(op, caller, target)
    code = error_code(response)
    if not any(response.status_code == s and c in (None, code) for s, c in allowed):
        problems.append(f"got {response.status_code} {code}, expected {allowed}")
    if response.status_code >= 400 and code is None:
        problems.append("the error body is not exactly {error: {code, message}}")
    if response.status_code == 401 and "www-authenticate" not in response.headers:
        problems.append("401 without WWW-Authenticate")
    if found := leaks(world, caller, response):
        problems.append(f"shows another clinic's {found}")
    answered = response.status_code < 300 and target in ("home", "-")
    if op.check is not None and caller.clinic is not None and answered:
        problem = op.check(response, world.clinics[caller.clinic])
        problems += [problem] if problem else []
    return problems


def describe(caller: Caller, label: str, target: str, response: httpx.Response, why: str) -> str:
    body = response.content[:160].decode("utf-8", "replace")
    return f"{caller.name} | {label} [{target}] -> {response.status_code}: {why} | {body}"


# --- setup -------------------------------------------------------------------------------


def sign_in(base_url: str, email: str) -> str:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        page = client.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        form = {"email": email, "password": TEST_PASSWORD, "csrf_token": token.group(1)}
        response = client.post("/sign-in", data=form)
        assert response.status_code == 303, response.text
        return str(response.cookies["clinscribe_session"])


def add_webhooks(
    admin: httpx.Client, clinic: ClinicData, prefix: str, callers: list[Caller]
) -> None:
    """The clinic's shared webhook, and one for each admin caller to delete."""

    def subscribe() -> str:
        body = {"url": f"{HOOK_URL}/{prefix}", "events": ["consultation.completed"]}
        response = admin.post("/api/webhooks", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    clinic.webhook = subscribe()
    for caller in callers:
        if caller.clinic == clinic.name and caller.csrf and caller.role is Role.ADMIN:
            clinic.webhooks_to_delete[caller.name] = subscribe()


def upload(client: httpx.Client, patient_ref: str) -> str:
    audio = SHORT_WAV.read_bytes()
    response = client.post(
        "/api/consultations",
        files={"audio": ("visit.wav", audio, "audio/wav")},
        data={"patient_ref": patient_ref},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_completed(client: httpx.Client, ids: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for cid in sorted(pending):
            body = client.get(f"/api/consultations/{cid}").json()
            if body["status"] in TERMINAL:
                assert body["status"] == "completed", body
                pending.discard(cid)
        time.sleep(0.1)
    assert not pending, f"not completed after {timeout_s}s: {pending}"


@dataclass
class Setup:
    world: World
    callers: list[Caller]
    keys: dict[str, Account]
    farewell_session: str  # a session of its own, signed out at the very end


def provision_accounts(server: ServerProcess) -> dict[str, Account]:
    """Keys and users of both clinics, made before the server starts."""
    return {
        "own clinician": server.account,
        "own admin": server.provision(OWN, role=Role.ADMIN, email="own-admin@example.org"),
        "own session clinician": server.provision(OWN, email="own-clinician@example.org"),
        "own staff": server.provision(OWN, email="own-staff@example.org"),
        "own revoked": server.provision(OWN),
        "other clinician": server.provision(OTHER),
        "other admin": server.provision(OTHER, role=Role.ADMIN, email="other-admin@example.org"),
        "other staff": server.provision(OTHER, email="other-staff@example.org"),
    }


def set_up(server: ServerProcess, keys: dict[str, Account], stack: ExitStack) -> Setup:
    base = server.base_url
    admin_session = sign_in(base, "own-admin@example.org")
    clinician_session = sign_in(base, "own-clinician@example.org")

    def session(token: str, csrf: bool) -> dict[str, str]:
        headers = {"Cookie": f"clinscribe_session={token}"}
        with httpx.Client(base_url=base, timeout=15, headers=headers) as client:
            me = client.get("/api/me").json()
        return headers | ({"X-CSRF-Token": me["csrf_token"]} if csrf else {})

    clinician_cookie = session(clinician_session, csrf=True)
    admin_cookie, admin_cookie_only = session(admin_session, True), session(admin_session, False)
    garbage = {"Authorization": "Bearer csk_" + "x" * 43}
    basic = {"Authorization": "Basic b3duOmFkbWlu"}
    forged = {"Cookie": "clinscribe_session=forged"}
    callers = [
        Caller("own clinician key", bearer(keys["own clinician"]), OWN, Role.CLINICIAN),
        Caller("own admin key", bearer(keys["own admin"]), OWN, Role.ADMIN),
        Caller("other clinician key", bearer(keys["other clinician"]), OTHER, Role.CLINICIAN),
        Caller("other admin key", bearer(keys["other admin"]), OTHER, Role.ADMIN),
        Caller("own clinician session", clinician_cookie, OWN, Role.CLINICIAN, session=True),
        Caller("own admin session", admin_cookie, OWN, Role.ADMIN, session=True),
        Caller("own admin session, no CSRF", admin_cookie_only, OWN, Role.ADMIN, True, csrf=False),
        Caller("no credentials", {}, rejected="unauthenticated"),
        Caller("revoked key", bearer(keys["own revoked"]), rejected="api_key_revoked"),
        Caller("garbage key", garbage, rejected="invalid_api_key"),
        Caller("basic auth", basic, rejected="bad_authorization"),
        Caller("unknown session", forged, session=True, rejected="session_expired"),
    ]

    clinics = {OWN: ClinicData(OWN), OTHER: ClinicData(OTHER)}
    for clinic in clinics.values():
        prefix = "own" if clinic.name == OWN else "other"
        client = stack.enter_context(server.client(keys[f"{prefix} clinician"]))
        clinic.clinic_id = str(client.get("/api/me").json()["clinic"]["id"])
        patient_ref = f"MRN-{prefix.upper()}-{uuid.uuid4().hex[:8]}"
        with server.client(keys[f"{prefix} admin"]) as admin:
            add_webhooks(admin, clinic, prefix, callers)  # before uploads: they get deliveries
        clinic.consultation = upload(client, patient_ref)
        for caller in callers:
            if caller.clinic == clinic.name and caller.csrf:
                clinic.to_delete[caller.name] = upload(client, patient_ref)
        wait_completed(client, [clinic.consultation, *clinic.to_delete.values()])
        clinic.victim_key = keys[f"{prefix} staff"].key_id
        with server.client(keys[f"{prefix} admin"]) as admin:
            listed = admin.get("/api/users").json()
            logged = admin.get(f"/api/webhooks/{clinic.webhook}/deliveries").json()["items"]
            assert logged, "no webhook delivery for the uploads"
            clinic.delivery = logged[-1]["id"]
        # Ours by email, so a leak in the listing cannot blur whose ids are whose.
        users = [u for u in listed if u["email"].startswith(f"{prefix}-")]
        clinic.staff_user = next(u["id"] for u in users if u["email"].startswith(f"{prefix}-staff"))
        clinic.markers = {
            clinic.name,
            clinic.clinic_id,
            patient_ref,
            clinic.consultation,
            *clinic.to_delete.values(),
            *(u["id"] for u in users),
            *(u["email"] for u in users),
            *(a.key_id for name, a in keys.items() if name.startswith(prefix)),
            f"{HOOK_URL}/{prefix}",
            clinic.webhook,
            *clinic.webhooks_to_delete.values(),
            *(d["id"] for d in logged),
        }
    with server.client(keys["own admin"]) as admin:
        revoked = admin.delete(f"/api/api-keys/{keys['own revoked'].key_id}")
        assert revoked.status_code == 204, revoked.text
    farewell = sign_in(base, "own-clinician@example.org")
    return Setup(World(clinics), callers, keys, farewell)


# --- the matrix --------------------------------------------------------------------------


def schema_problems(schema: dict[str, Any]) -> list[str]:
    served = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    classified = {(op.method, op.path) for op in OPERATIONS if op.in_schema}
    problems = [
        f"unclassified operation {m} {p}: add it to OPERATIONS" for m, p in served - classified
    ]
    problems += [f"OPERATIONS lists {m} {p}, gone from the service" for m, p in classified - served]
    problems += [
        f"{op.label} takes an id but does not say whose (owned=)"
        for op in OPERATIONS
        if ("{" in op.path) != (op.owned is not None)
    ]
    return problems


def run_operation(
    world: World, client: httpx.Client, op: Operation, caller: Caller, tally: Counter[str]
) -> list[str]:
    failures = []
    answers: dict[str, httpx.Response] = {}
    for target in targets(op, caller):
        payload = op.request(world, world.foreign_to(caller.clinic)) if op.request else Payload()
        response = send(client, op.method, url_of(world, op, caller, target), payload)
        answers[target] = response
        tally[category(op, caller, target)] += 1
        for problem in judge(world, op, caller, target, response):
            failures.append(describe(caller, op.label, target, response, problem))
    if "foreign" in answers:
        foreign, missing = answers["foreign"], answers["missing"]
        if (foreign.status_code, foreign.content) != (missing.status_code, missing.content):
            why = f"differs from a missing id's answer ({missing.status_code} {missing.text})"
            failures.append(describe(caller, op.label, "foreign", foreign, why))
    return failures


def run_page(world: World, client: httpx.Client, page: Page, caller: Caller) -> list[str]:
    signed_in = caller.session and caller.rejected is None
    status, location = page.signed_in if signed_in else page.signed_out
    payload = Payload(data=page.data) if page.data is not None else Payload()
    response = send(client, page.method, page.path, payload)
    problems = []
    if response.status_code != status or response.headers.get("location") != location:
        got = (response.status_code, response.headers.get("location"))
        problems.append(f"got {got}, expected {(status, location)}")
    if signed_in and page.path == "/" and caller.clinic and caller.clinic not in response.text:
        problems.append("the home page does not name the caller's clinic")
    if found := leaks(world, caller, response):
        problems.append(f"shows another clinic's {found}")
    label = f"{page.method} {page.path} (page)"
    return [describe(caller, label, "-", response, p) for p in problems]


def final_checks(server: ServerProcess, setup: Setup, tally: Counter[str]) -> list[str]:
    """What other clinics tried to delete is still there; a sign-out with its token ends it."""
    failures = []
    for clinic in setup.world.clinics.values():
        prefix = "own" if clinic.name == OWN else "other"
        with server.client(setup.keys[f"{prefix} clinician"]) as client:
            for cid, status in [
                (clinic.consultation, 200),
                *((c, 404) for c in clinic.to_delete.values()),
            ]:
                tally["final checks"] += 1
                if (got := client.get(f"/api/consultations/{cid}").status_code) != status:
                    failures.append(f"final: {clinic.name}'s {cid} answers {got}, not {status}")
        with server.client(setup.keys[f"{prefix} admin"]) as admin:
            for webhook, status in [
                (clinic.webhook, 200),
                *((w, 404) for w in clinic.webhooks_to_delete.values()),
            ]:
                tally["final checks"] += 1
                if (got := admin.get(f"/api/webhooks/{webhook}").status_code) != status:
                    failures.append(f"final: {clinic.name}'s webhook answers {got}, not {status}")
    cookie = {"Cookie": f"clinscribe_session={setup.farewell_session}"}
    with httpx.Client(base_url=server.base_url, timeout=15, headers=cookie) as client:
        csrf = str(client.get("/api/me").json()["csrf_token"])
        out = client.post("/sign-out", data={"csrf_token": csrf})
        client.cookies.clear()
        after = client.get("/api/me")
        tally["final checks"] += 2
        if (out.status_code, out.headers.get("location")) != (303, "/sign-in"):
            failures.append(f"final: sign-out with its token answers {out.status_code}")
        if after.status_code != 401 or error_code(after) != "session_expired":
            failures.append(f"final: a signed-out session still works: {after.status_code}")
    return failures


@pytest.fixture
def server(tmp_path: Path, fake_stt: FakeOpenAIServer) -> Iterator[ServerProcess]:
    env = fake_stt_env(fake_stt.base_url) | GENEROUS_LIMITS | LOOPBACK_WEBHOOKS
    server = ServerProcess(tmp_path / "svc", env)
    try:
        yield server
    finally:
        server.kill()


def test_every_operation_answers_every_caller_as_its_clinic_and_role_allow(
    server: ServerProcess,
) -> None:
    keys = provision_accounts(server)
    server.start()
    tally: Counter[str] = Counter()
    with ExitStack() as stack:
        setup = set_up(server, keys, stack)
        world, callers = setup.world, setup.callers
        clients = {
            c.name: stack.enter_context(
                httpx.Client(base_url=server.base_url, timeout=15, headers=c.headers)
            )
            for c in callers
        }
        failures = schema_problems(httpx.get(f"{server.base_url}/openapi.json").json())
        for page in PAGES:
            for caller in callers:
                tally["HTML pages"] += 1
                failures += run_page(world, clients[caller.name], page, caller)
        for caller in callers:
            for op in (op for op in OPERATIONS if not op.destructive):
                failures += run_operation(world, clients[caller.name], op, caller, tally)
        for op in (op for op in OPERATIONS if op.destructive):
            for caller in callers:
                failures += run_operation(world, clients[caller.name], op, caller, tally)
        failures += final_checks(server, setup, tally)
    total = sum(tally.values())
    print(f"\nauthorization matrix: {total} cases, {len(failures)} failed")
    for name, count in sorted(tally.items()):
        print(f"  {count:4d}  {name}")
    assert not failures, f"{len(failures)} of {total} cases failed:\n" + "\n".join(failures)
