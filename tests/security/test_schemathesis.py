"""Schemathesis against the running service, with a valid admin key: no request may answer 5xx.

Every operation of ``GET /openapi.json`` is exercised in four runs, all deterministic so CI sends
the same requests every time:

1. ``positive``: Hypothesis-generated data that fits the schema, random ids (mostly 404s);
2. ``negative``: data that breaks the schema (must be refused with 4xx, never crash);
3. ``coverage``: Schemathesis' boundary values (limits, missing and extra fields, wrong types,
   unexpected HTTP methods), positive and negative;
4. ``seeded``: the positive and coverage cases again with the path ids of real objects (a
   completed consultation, one of its utterances, a spare API key, a user, a webhook and one
   of its deliveries), so the handlers run past the lookup. Reads run first, then edits,
   signing, and deletions last.

Webhooks keep the default address policy: a fuzzed subscription can only name a public
address, and the seeded one is on loopback, so its attempts are refused without sending.

The key the fuzzer uses cannot be revoked by it: random key ids do not match it, and the seeded
``DELETE /api/api-keys/{key_id}`` targets a second key made for the purpose.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from clinscribe.models import Role
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.accounts import Account, bearer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env
from tests.webhooks.seed import seed_webhook

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30  # Hypothesis cases per operation and run
MAX_COVERAGE_CASES = 100  # boundary-value cases per operation and run (the schema gives <= 91)
REQUEST_TIMEOUT_S = 30.0
UPLOAD = "POST /api/consultations"
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception): ")
_METHOD_ORDER = {"GET": 0, "PATCH": 1, "PUT": 1, "POST": 2, "DELETE": 4}

Case = schemathesis.Case[Any]
Operation = APIOperation[Any, Any, Any, Any]
Send = Callable[[str, Case], None]
PathParameters = Callable[[Operation], dict[str, str]]


@dataclass(frozen=True)
class Seed:
    """Real objects in the fuzzed clinic, for path parameters."""

    consultation_id: str
    utterance_id: str
    key_id: str  # a clinician key that may be revoked
    user_id: str
    webhook_id: str  # on an address the server refuses: never sent anything
    delivery_id: str

    def path_parameters(self, operation: Operation) -> dict[str, str]:
        known = {
            "consultation_id": self.consultation_id,
            "utterance_id": self.utterance_id,
            "key_id": self.key_id,
            "user_id": self.user_id,
            "webhook_id": self.webhook_id,
            "delivery_id": self.delivery_id,
            "code": "J22",  # an ICD-10-CM code the seeded note may or may not suggest
        }
        names = {parameter.name for parameter in operation.path_parameters}
        assert names <= known.keys(), f"no real value for {names - known.keys()} in {operation}"
        return {name: known[name] for name in names}


@dataclass(frozen=True)
class Outcome:
    run: str
    operation: str
    status: int | None  # None: no response at all


@dataclass
class FuzzReport:
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def cases(self, run: str | None = None) -> Counter[str]:
        return Counter(o.operation for o in self.outcomes if run is None or o.run == run)

    def status_classes(self, operation: str | None = None) -> Counter[str]:
        return Counter(
            f"{o.status // 100}xx" if o.status else "none"
            for o in self.outcomes
            if operation is None or o.operation == operation
        )

    def statuses(self, operation: str, run: str | None = None) -> set[int | None]:
        return {
            o.status
            for o in self.outcomes
            if o.operation == operation and (run is None or o.run == run)
        }

    def summary(self, operations: list[str]) -> str:
        per_operation = self.cases()
        runs = Counter(o.run for o in self.outcomes)
        lines = [
            f"schemathesis: {len(self.outcomes)} cases over {len(operations)} operations "
            f"({min(per_operation.values())}-{max(per_operation.values())} per operation; "
            f"{', '.join(f'{run} {n}' for run, n in runs.items())}); "
            f"status classes {dict(sorted(self.status_classes().items()))}"
        ]
        for label in operations:
            classes = " ".join(f"{k}={v}" for k, v in sorted(self.status_classes(label).items()))
            lines.append(f"  {per_operation[label]:4d}  {label:75s} {classes}")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real service, built like ``fake_server``, without rate limits that would answer 429."""
    with FakeOpenAIServer() as fake_stt:
        env = fake_stt_env(fake_stt.base_url)
        env["CLINSCRIBE_API_REQUESTS_PER_MINUTE"] = "1000000"
        env["CLINSCRIBE_IP_REQUESTS_PER_MINUTE"] = "1000000"
        server = ServerProcess(tmp_path_factory.mktemp("schemathesis") / "svc", env)
        server.start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture(scope="module")
def admin(fuzzed_server: ServerProcess) -> Account:
    return fuzzed_server.provision("Test Clinic", role=Role.ADMIN)


@pytest.fixture(scope="module")
def seed(fuzzed_server: ServerProcess, admin: Account) -> Seed:
    uploaded = fuzzed_server.upload(SHORT_WAV)
    assert uploaded.status_code == 202, uploaded.text
    consultation_id = str(uploaded.json()["id"])
    finished = fuzzed_server.wait_terminal(consultation_id)
    assert finished["status"] == "completed", finished
    spare = fuzzed_server.provision("Test Clinic", role=Role.CLINICIAN)
    assert spare.key_id != admin.key_id
    with httpx.Client(base_url=fuzzed_server.base_url, headers=bearer(admin), timeout=30) as api:
        transcript = api.get(f"/api/consultations/{consultation_id}/transcript")
        assert transcript.status_code == 200, transcript.text
        utterances = transcript.json()["utterances"]
        assert utterances, transcript.text
        user = api.post(
            "/api/users",
            json={"email": "fuzz.target@example.org", "name": "Fuzz Target", "password": "x" * 12},
        )
        assert user.status_code == 201, user.text
    webhook_id, delivery_id = seed_webhook(
        fuzzed_server.database_url, fuzzed_server.keyring(), "Test Clinic", consultation_id
    )
    return Seed(
        consultation_id,
        str(utterances[0]["id"]),
        spare.key_id,
        str(user.json()["id"]),
        webhook_id,
        delivery_id,
    )


def _label(operation: Operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _reproduction(case: Case, base_url: str) -> str:
    """A short curl line (key redacted: any admin key of the clinic reproduces it)."""
    curl = case.as_curl_command(headers={"Authorization": "Bearer $ADMIN_KEY"}, base_url=base_url)
    return curl if len(curl) <= 600 else curl[:600] + " ...(truncated)"


def _hypothesis_run(
    operation: Operation,
    run: str,
    mode: GenerationMode,
    send: Send,
    path_parameters: PathParameters | None = None,
) -> bool:
    """Send up to MAX_EXAMPLES generated cases; False if none could be generated (in negative
    mode: the operation has no input that can be made invalid, such as GET /healthz)."""
    fixed = path_parameters(operation) if path_parameters else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    # Derandomized, no example database, no shrinking: failures are collected, never raised.
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def fuzz_operation(case: Case) -> None:
        send(run, case)

    try:
        fuzz_operation()
    except Unsatisfiable:
        return False
    return True


def _coverage_run(
    operation: Operation, run: str, send: Send, path_parameters: PathParameters | None = None
) -> None:
    """Schemathesis' deterministic boundary cases (its `coverage` phase), both modes."""
    schema = operation.schema
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
    )
    for case in itertools.islice(cases, MAX_COVERAGE_CASES):
        if path_parameters is not None:
            if case.method.upper() != operation.method.upper():
                continue  # an unexpected-method probe: already sent in the plain coverage run
            case.path_parameters = {**(case.path_parameters or {}), **path_parameters(operation)}
        send(run, case)


def _seeded_order(operation: Operation) -> tuple[int, str]:
    # Reads, then edits, then signing (it locks the note), then deletions.
    rank = _METHOD_ORDER[operation.method.upper()] + operation.path.endswith("/sign")
    return rank, operation.path


def test_no_operation_answers_a_server_error(
    fuzzed_server: ServerProcess, admin: Account, seed: Seed
) -> None:
    base_url = fuzzed_server.base_url
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=schemathesis.Config(), timeout=REQUEST_TIMEOUT_S
    )
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the service's OpenAPI schema is invalid: {result.err()}"
        operations.append(result.ok())
    labels = [_label(op) for op in operations]
    assert len(operations) >= 20, labels
    report = FuzzReport()
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 only: no proxy from the environment

    def send(run: str, case: Case) -> None:
        label = _label(case.operation)
        try:
            response = case.call(
                base_url=base_url, session=session, headers=bearer(admin), timeout=REQUEST_TIMEOUT_S
            )
        except requests.RequestException as error:
            report.outcomes.append(Outcome(run, label, None))
            report.failures.append(
                f"{label} [{run}]: no response ({type(error).__name__})\n"
                f"    {_reproduction(case, base_url)}"
            )
            return
        report.outcomes.append(Outcome(run, label, response.status_code))
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup:
            report.failures.append(
                f"{label} [{run}]: {case.method.upper()} answered {response.status_code} "
                f"{response.text[:160]!r}\n    {_reproduction(case, base_url)}"
            )

    nothing_to_negate = []
    for operation in operations:
        assert _hypothesis_run(operation, "positive", GenerationMode.POSITIVE, send), operation
        if not _hypothesis_run(operation, "negative", GenerationMode.NEGATIVE, send):
            nothing_to_negate.append(_label(operation))
        _coverage_run(operation, "coverage", send)
    real_ids = seed.path_parameters
    for operation in sorted((op for op in operations if op.path_parameters), key=_seeded_order):
        assert _hypothesis_run(operation, "seeded", GenerationMode.POSITIVE, send, real_ids)
        _coverage_run(operation, "seeded", send, real_ids)
    session.close()

    print("\n" + report.summary(labels))
    print(f"  no negative cases possible for: {', '.join(nothing_to_negate)}")

    log = fuzzed_server.log_text()
    if report.failures:
        exceptions = sorted({line for line in log.splitlines() if _EXCEPTION_LINE.match(line)})
        pytest.fail(
            f"{len(report.failures)} of {len(report.outcomes)} requests answered 5xx or nothing:\n"
            + "\n".join(report.failures[:40])
            + "\nexceptions in the server log:\n  "
            + "\n  ".join(exceptions[:20]),
            pytrace=False,
        )
    assert all(report.cases("positive")[label] for label in labels), report.cases("positive")
    upload_statuses = report.statuses(UPLOAD)
    assert upload_statuses, "no upload was sent"
    assert all(s is not None and 400 <= s < 500 for s in upload_statuses), (
        f"random bytes uploaded as audio must answer 4xx, got {sorted(map(str, upload_statuses))}"
    )
    # The seeded run reached real objects: the reads of the real consultation succeeded.
    for read in ("", "/events", "/transcript", "/audio", "/note"):
        label = f"GET /api/consultations/{{consultation_id}}{read}"
        assert report.statuses(label, "seeded") & {200, 206}, (label, report.statuses(label))

    assert fuzzed_server.process is not None and fuzzed_server.process.poll() is None, (
        "the server died during fuzzing:\n" + fuzzed_server.log_text()[-3000:]
    )
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 500) :][:6000]
    with httpx.Client(base_url=base_url, headers=bearer(admin), timeout=30) as api:
        me = api.get("/api/me")
    assert me.status_code == 200, f"the fuzzing key stopped working: {me.text}"


def test_upload_with_non_latin1_part_names_is_accepted(
    fuzzed_server: ServerProcess, admin: Account
) -> None:
    """Found by the fuzzer: a UTF-8 field name or filename in a part header answered 500."""
    response = httpx.post(
        f"{fuzzed_server.base_url}/api/consultations",
        headers=bearer(admin),
        files={"audio": ("परामर्श-ñ.wav", SHORT_WAV.read_bytes(), "audio/wav")},
        data={"टिप्पणी": "unknown fields are ignored"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
