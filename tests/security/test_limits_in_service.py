"""Request limits and headers as the running service applies them."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.server import ServerProcess, fake_stt_env


def test_rate_limits_body_limit_and_headers(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        env = fake_stt_env(fake.base_url) | {
            "CLINSCRIBE_API_REQUESTS_PER_MINUTE": "5",
            "CLINSCRIBE_MAX_REQUEST_KB": "64",
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            other = server.provision("Other Clinic")
            with server.client() as client:
                codes = [client.get("/api/consultations").status_code for _ in range(7)]
                limited = client.get("/api/consultations")
                # Another key has its own budget.
                with server.client(other) as other_client:
                    assert other_client.get("/api/consultations").status_code == 200
                page = client.get("/sign-in")
                big = client.put(
                    "/api/consultations/x/note",
                    content=b"{" + b" " * 100_000 + b"}",
                    headers={"content-type": "application/json"},
                )
        finally:
            server.kill()
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert limited.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in page.headers  # plain HTTP here
