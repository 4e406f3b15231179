"""Contract tests: the official sarvamai SDK accepts what the fake Sarvam server answers.

The SDK's pydantic types, its error classes and its batch-job helper (upload to the signed URL,
poll, download the outputs named in job_details) all run against the fake. If a future SDK
release expects different shapes, these fail before an adapter test passes against a stale fake.
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sarvamai import (
    BadRequestError,
    DiarizedTranscript,
    ForbiddenError,
    SarvamAI,
    SarvamAIEnvironment,
    SpeechToTextResponse,
    TooManyRequestsError,
)

from .openai_compat import CANNED_CONSULTATION
from .sarvam import FakeFault, FakeSarvamServer

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY = "sk_test_sarvam"
NO_RETRIES = {"max_retries": 0}  # the SDK retries 429/5xx twice by default


def silent_wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def environment(fake: FakeSarvamServer) -> SarvamAIEnvironment:
    ws = fake.base_url.replace("http://", "ws://")
    return SarvamAIEnvironment(
        base=fake.base_url, creative=f"{fake.base_url}/dubbing", production=ws
    )


def skip_without_job_api(client: SarvamAI) -> None:
    if not hasattr(client, "speech_to_text_job"):
        pytest.skip("this sarvamai release has no batch job API")


@pytest.fixture
def fake() -> Iterator[FakeSarvamServer]:
    with FakeSarvamServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeSarvamServer) -> SarvamAI:
    return SarvamAI(api_subscription_key=API_KEY, environment=environment(fake))


def test_rest_transcription_parses_with_chunk_timestamps(
    fake: FakeSarvamServer, client: SarvamAI
) -> None:
    audio = silent_wav(10.0)
    result = client.speech_to_text.transcribe(
        file=("visit.wav", audio, "audio/wav"),
        model="saaras:v3",
        mode="transcribe",
        language_code="ta-IN",
        with_timestamps=True,
    )

    assert isinstance(result, SpeechToTextResponse)
    assert result.language_code == "ta-IN" and result.language_probability is None
    assert result.timestamps is not None
    assert result.timestamps.words == CANNED_CONSULTATION
    assert result.timestamps.end_time_seconds[-1] <= 10.0
    assert result.transcript.startswith("Good morning")
    [recorded] = fake.requests_to("/speech-to-text")
    assert recorded.file_sha256 == hashlib.sha256(audio).hexdigest()
    assert recorded.form["language_code"] == "ta-IN"
    assert recorded.form["with_timestamps"].lower() == "true"
    assert recorded.headers["api-subscription-key"] == "<redacted>"
    assert recorded.status == 200


def test_language_detection_and_no_timestamps_unless_asked(client: SarvamAI) -> None:
    result = client.speech_to_text.transcribe(
        file=("visit.wav", silent_wav(2.0), "audio/wav"), language_code="unknown"
    )

    assert result.timestamps is None
    assert result.language_code == "en-IN" and result.language_probability is not None


def test_bad_key_raises_forbidden(fake: FakeSarvamServer) -> None:
    client = SarvamAI(api_subscription_key="wrong", environment=environment(fake))
    with pytest.raises(ForbiddenError) as caught:
        client.speech_to_text.transcribe(file=("visit.wav", silent_wav(1.0), "audio/wav"))

    assert caught.value.status_code == 403
    assert caught.value.body["error"]["code"] == "invalid_api_key_error"
    assert caught.value.body["error"]["request_id"]


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (FakeFault.rate_limited(), "rate_limit_exceeded_error"),
        (FakeFault.insufficient_quota(), "insufficient_quota_error"),
    ],
)
def test_429_raises_too_many_requests(
    fake: FakeSarvamServer, client: SarvamAI, fault: FakeFault, code: str
) -> None:
    fake.faults.append(fault)
    with pytest.raises(TooManyRequestsError) as caught:
        client.speech_to_text.transcribe(
            file=("visit.wav", silent_wav(1.0), "audio/wav"), request_options=NO_RETRIES
        )

    assert caught.value.body["error"]["code"] == code
    assert client.speech_to_text.transcribe(file=("v.wav", silent_wav(1.0), "audio/wav"))


def test_rest_refuses_audio_over_30_seconds(fake: FakeSarvamServer, client: SarvamAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.speech_to_text.transcribe(file=("long.wav", silent_wav(31.0), "audio/wav"))

    assert caught.value.body["error"]["code"] == "invalid_request_error"
    assert fake.limit_violations == 1


def test_batch_job_end_to_end_with_diarization(
    fake: FakeSarvamServer, client: SarvamAI, tmp_path: Path
) -> None:
    skip_without_job_api(client)
    audio = tmp_path / "consult.wav"
    audio.write_bytes(silent_wav(120.0))
    fake.polls_to_complete = 3

    job = client.speech_to_text_job.create_job(
        model="saaras:v3",
        mode="transcribe",
        language_code="hi-IN",
        with_diarization=True,
        with_timestamps=True,
        num_speakers=2,
    )
    assert job.upload_files(file_paths=[str(audio)])
    assert job.start().job_state == "Pending"
    status = job.wait_until_complete(poll_interval=0, timeout=10)
    results = job.get_file_results()
    assert job.download_outputs(output_dir=str(tmp_path / "out"))

    assert status.job_state == "Completed" and status.successful_files_count == 1
    assert [f["file_name"] for f in results["successful"]] == ["consult.wav"]
    output = json.loads((tmp_path / "out" / "consult.wav.json").read_text())
    diarized = DiarizedTranscript.model_validate(output["diarized_transcript"])
    assert [e.speaker_id for e in diarized.entries[:4]] == ["0", "1", "0", "1"]
    assert diarized.entries[-1].end_time_seconds <= 120.0
    assert output["timestamps"]["words"] == CANNED_CONSULTATION
    [created] = fake.requests_to("/speech-to-text/job/v1", "POST")
    assert created.json["job_parameters"]["num_speakers"] == 2
    [put] = fake.blob_puts()
    assert put.headers["x-ms-blob-type"] == "BlockBlob"
    assert put.file_sha256 == hashlib.sha256(audio.read_bytes()).hexdigest()
    blob_requests = [r for r in fake.requests if r.path.startswith("/blob/")]
    assert [r.method for r in blob_requests] == ["PUT", "GET"]
    assert all("api-subscription-key" not in r.headers for r in blob_requests)
    assert fake.jobs[job.job_id].polls == 3  # Running, Running, then Completed


def test_failed_batch_job_reports_failed_files(
    fake: FakeSarvamServer, client: SarvamAI, tmp_path: Path
) -> None:
    skip_without_job_api(client)
    audio = tmp_path / "consult.wav"
    audio.write_bytes(silent_wav(40.0))
    fake.fail_jobs, fake.polls_to_complete = True, 1

    job = client.speech_to_text_job.create_job(model="saaras:v3", language_code="en-IN")
    job.upload_files(file_paths=[str(audio)])
    job.start()
    status = job.wait_until_complete(poll_interval=0, timeout=10)

    assert status.job_state == "Failed" and status.failed_files_count == 1
    assert job.get_file_results()["failed"][0]["status"] == "Internal Server Error"
    with pytest.raises(BadRequestError):
        client.speech_to_text_job.get_download_links(job_id=job.job_id, files=["0.json"])


def test_signed_urls_are_enforced(fake: FakeSarvamServer, client: SarvamAI) -> None:
    skip_without_job_api(client)
    job = client.speech_to_text_job.create_job(model="saaras:v3")
    links = client.speech_to_text_job.get_upload_links(job_id=job.job_id, files=["a.wav"])
    url = links.upload_urls["a.wav"].file_url
    wav = silent_wav(1.0)

    without_header = httpx.put(url, content=wav)
    forged = httpx.put(
        url.replace("sig=", "sig=0"), content=wav, headers={"x-ms-blob-type": "BlockBlob"}
    )
    with pytest.raises(BadRequestError):
        job.start()  # nothing uploaded yet
    ok = httpx.put(url, content=wav, headers={"x-ms-blob-type": "BlockBlob"})

    assert (without_header.status_code, forged.status_code, ok.status_code) == (400, 403, 201)
    assert forged.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert job.start().job_state == "Pending"
