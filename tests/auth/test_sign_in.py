"""Web sign-in: cookies, CSRF, throttling and lockout (audited), sessions, sign-out."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clinscribe.models import Role
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.accounts import TEST_PASSWORD, Account
from tests.support.server import ServerProcess, fake_stt_env

LOCKOUT_S = 4.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with FakeOpenAIServer() as fake:
        env = fake_stt_env(fake.base_url)
        env["CLINSCRIBE_SIGNIN_MAX_FAILURES"] = "3"
        env["CLINSCRIBE_SIGNIN_LOCKOUT_MINUTES"] = str(LOCKOUT_S / 60)
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            yield server
        finally:
            server.kill()


def _browser(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False)


def _sign_in(browser: httpx.Client, email: str, password: str) -> httpx.Response:
    page = browser.get("/sign-in")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return browser.post(
        "/sign-in", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )


def _audit(server: ServerProcess, admin: Account, action: str) -> list[dict[str, object]]:
    with server.client(admin) as client:
        response = client.get("/api/audit", params={"action": action})
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_sign_in_sets_a_safe_session_cookie_and_csrf_guards_writes(server: ServerProcess) -> None:
    account = server.provision(role=Role.CLINICIAN, email="dr.a@example.org")
    with _browser(server) as browser:
        assert browser.get("/").headers["location"] == "/sign-in"
        response = _sign_in(browser, "Dr.A@example.org ", TEST_PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert "clinscribe_session=" in cookie
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        assert "Max-Age=43200" in cookie  # CLINSCRIBE_SESSION_HOURS=12
        home = browser.get("/")
        assert home.status_code == 200 and "dr.a@example.org" in home.text
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]

        me = browser.get("/api/me").json()
        assert me["actor_type"] == "user" and me["role"] == "clinician"
        assert me["clinic"]["name"] == account.clinic and me["csrf_token"]

        # A state-changing request riding on the cookie alone is refused...
        upload = {"audio": ("a.wav", b"RIFF", "audio/wav")}
        refused = browser.post("/api/consultations", files=upload)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_failed"
        wrong = browser.post("/api/consultations", files=upload, headers={"X-CSRF-Token": "x"})
        assert wrong.status_code == 403
        # ...and passes authentication with the session's token (then fails on the bad audio).
        allowed = browser.post(
            "/api/consultations", files=upload, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        assert allowed.status_code == 422, allowed.text

        # Sign-out needs the token too, then the cookie is worthless.
        token = me["csrf_token"]
        browser.post("/sign-out", data={"csrf_token": token})
        assert browser.get("/api/me").status_code == 401
    with _browser(server) as stranger:
        stranger.cookies.set("clinscribe_session", "forged-token")
        body = stranger.get("/api/me").json()
        assert body["error"]["code"] == "session_expired"


def test_sign_in_form_refuses_a_forged_post(server: ServerProcess) -> None:
    server.provision(email="dr.b@example.org")
    with _browser(server) as browser:
        response = browser.post(
            "/sign-in",
            data={"email": "dr.b@example.org", "password": TEST_PASSWORD, "csrf_token": "x"},
        )
        assert response.status_code == 403
        assert "clinscribe_session" not in response.headers.get("set-cookie", "")


def test_repeated_failures_lock_the_account_for_the_configured_time(
    server: ServerProcess,
) -> None:
    server.provision(email="dr.c@example.org")
    admin = server.provision(role=Role.ADMIN)
    with _browser(server) as browser:
        for _ in range(3):
            failed = _sign_in(browser, "dr.c@example.org", "wrong password!!")
            assert failed.status_code == 401
            assert "email or password is wrong" in failed.text
        locked_at = time.monotonic()
        # Locked: even the right password is refused, with the same message.
        refused = _sign_in(browser, "dr.c@example.org", TEST_PASSWORD)
        assert refused.status_code == 401 and "clinscribe_session" not in refused.headers.get(
            "set-cookie", ""
        )
        locks = _audit(server, admin, "user.locked")
        assert len(locks) == 1 and locks[0]["actor"] == "dr.c@example.org"
        assert len(_audit(server, admin, "user.signin_failed")) == 3
        assert _audit(server, admin, "user.signin_refused")[0]["detail"] == {"reason": "locked"}
        # After the lockout the right password works again (bounded wait).
        time.sleep(max(0.0, LOCKOUT_S + 0.5 - (time.monotonic() - locked_at)))
        assert _sign_in(browser, "dr.c@example.org", TEST_PASSWORD).status_code == 303
    assert len(_audit(server, admin, "user.signed_in")) == 1


def test_unknown_email_answers_like_a_wrong_password(server: ServerProcess) -> None:
    server.provision(email="dr.d@example.org")
    with _browser(server) as browser:
        unknown = _sign_in(browser, "nobody@example.org", TEST_PASSWORD)
        wrong = _sign_in(browser, "dr.d@example.org", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    message = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)
    unknown_text, wrong_text = message.search(unknown.text), message.search(wrong.text)
    assert unknown_text and wrong_text and unknown_text.group(1) == wrong_text.group(1)


def test_sign_in_attempts_are_rate_limited_per_address(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        env = fake_stt_env(fake.base_url) | {"CLINSCRIBE_SIGNIN_ATTEMPTS_PER_MINUTE_PER_IP": "3"}
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            with _browser(server) as browser:
                codes = [
                    _sign_in(browser, f"u{i}@example.org", "x" * 12).status_code for i in range(5)
                ]
        finally:
            server.kill()
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]


def test_admin_manages_users_and_api_keys(server: ServerProcess) -> None:
    admin = server.provision(role=Role.ADMIN)
    with server.client(admin) as client:
        created = client.post(
            "/api/users",
            json={"email": "new@example.org", "name": "Dr New", "password": TEST_PASSWORD},
        )
        assert created.status_code == 201, created.text
        weak = client.post(
            "/api/users", json={"email": "w@example.org", "name": "W", "password": "short"}
        )
        assert weak.status_code == 400 and weak.json()["error"]["code"] == "weak_password"
        key = client.post("/api/api-keys", json={"name": "EMR"})
        assert key.status_code == 201
        new_key = key.json()["key"]
        assert new_key.startswith("csk_")
        listed = client.get("/api/api-keys").json()
        assert all("key" not in row for row in listed)  # never shown again
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {new_key}"}
        ) as emr:
            assert emr.get("/api/consultations").status_code == 200
            assert client.delete(f"/api/api-keys/{key.json()['id']}").status_code == 204
            revoked = emr.get("/api/consultations")
            assert revoked.status_code == 401
            assert revoked.json()["error"]["code"] == "api_key_revoked"
        used = [row for row in client.get("/api/api-keys").json() if row["name"] == "EMR"]
        assert used[0]["last_used_at"] is not None and used[0]["revoked_at"] is not None
        actions = {e["action"] for e in client.get("/api/audit").json()["items"]}
        assert {"user.created", "api_key.created", "api_key.revoked"} <= actions


def test_concurrent_wrong_passwords_cannot_outrun_the_lockout(server: ServerProcess) -> None:
    """Twelve wrong passwords at once: three are counted, one lock, the rest are refused."""
    import concurrent.futures

    server.provision(email="dr.e@example.org")
    admin = server.provision(role=Role.ADMIN)

    def attempt(password: str) -> int:
        with _browser(server) as browser:
            return _sign_in(browser, "dr.e@example.org", password).status_code

    passwords = [f"wrong password {i:02d}" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(attempt, passwords))
    assert codes == [401] * 12
    assert len(_audit(server, admin, "user.signin_failed")) == 3
    assert len(_audit(server, admin, "user.locked")) == 1
    assert len(_audit(server, admin, "user.signin_refused")) == 9
    with _browser(server) as browser:  # locked: the right password is refused too
        assert _sign_in(browser, "dr.e@example.org", TEST_PASSWORD).status_code == 401
