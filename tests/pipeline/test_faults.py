"""Provider faults against the real service: transient errors retry, permanent ones fail fast."""

from __future__ import annotations

from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess


def _upload(server: ServerProcess) -> str:
    response = server.upload(SHORT_WAV)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_503_twice_then_ok_completes(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.faults.extend([FakeFault.unavailable(), FakeFault.unavailable()])
    body = fake_server.wait_terminal(_upload(fake_server))
    assert body["status"] == "completed", body
    assert body["error"] is None
    assert [r.status for r in fake_stt.transcription_requests()] == [503, 503, 200]


def test_429_retry_after_is_honoured(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.faults.append(FakeFault.rate_limited(2))
    body = fake_server.wait_terminal(_upload(fake_server))
    assert body["status"] == "completed", body
    first, second = fake_stt.transcription_requests()
    assert (first.status, second.status) == (429, 200)
    # Backoff settings in tests are tiny (0.05 s): only retry-after explains this gap.
    assert second.received_at - first.received_at >= 2.0


def test_401_fails_at_once_with_clear_error_then_retry_resumes(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.faults.append(FakeFault.invalid_key())
    consultation_id = _upload(fake_server)
    body = fake_server.wait_terminal(consultation_id)
    assert body["status"] == "failed"
    assert body["stage"] == "transcribing"
    assert body["error"]["code"] == "provider_auth_failed"
    assert "API key" in body["error"]["message"]
    assert body["error"]["retryable"] is True
    assert len(fake_stt.transcription_requests()) == 1
    # An expected failure is reported, not logged as a crash.
    assert "Traceback" not in fake_server.log_text()

    # The operator fixed the key: retry resumes at transcribing; audio is not prepared again.
    with fake_server.client() as client:
        retried = client.post(f"/api/consultations/{consultation_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "queued"
    body = fake_server.wait_terminal(consultation_id)
    assert body["status"] == "completed", body
    assert body["error"] is None
    assert len(fake_stt.transcription_requests()) == 2
    log = fake_server.log_text()
    assert log.count("audio prepared") == 1
    assert log.count("transcription completed") == 1


def test_retry_of_a_completed_consultation_is_refused(
    fake_server: ServerProcess,
) -> None:
    consultation_id = _upload(fake_server)
    assert fake_server.wait_terminal(consultation_id)["status"] == "completed"
    with fake_server.client() as client:
        response = client.post(f"/api/consultations/{consultation_id}/retry")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_retryable"


def test_transient_errors_exhausting_retries_fail_visibly(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.faults.extend([FakeFault.unavailable()] * 6)  # CLINSCRIBE_RETRY__MAX_ATTEMPTS=6
    body = fake_server.wait_terminal(_upload(fake_server), timeout_s=60)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "provider_unavailable"
    assert body["error"]["retryable"] is True
    assert len(fake_stt.transcription_requests()) == 6
