"""The consultations API end to end against the real service with a fake STT provider."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess


def _upload(server: ServerProcess, **fields: str) -> str:
    response = server.upload(SHORT_WAV, **fields)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    return str(body["id"])


def test_events_deliver_every_stage_within_a_second(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.latency_s = 1.0
    consultation_id = _upload(fake_server)
    received: list[tuple[float, dict[str, object]]] = []

    def listen() -> None:
        url = f"/api/consultations/{consultation_id}/events"
        with fake_server.client() as client, client.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "status":
                    received.append((time.time(), json.loads(line[5:])))

    thread = threading.Thread(target=listen)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the stream did not close after the terminal status"
    stages = [(body["status"], body["stage"]) for _, body in received]
    expected_tail = [
        ("processing", "preparing_audio"),
        ("processing", "transcribing"),
        ("processing", "writing_note"),
        ("processing", "verifying_note"),
        ("completed", "finalizing"),
    ]
    assert stages[-5:] == expected_tail, stages
    for arrived, body in received[1:]:
        changed = datetime.fromisoformat(str(body["updated_at"])).astimezone(UTC).timestamp()
        assert arrived - changed < 1.0, (body["stage"], arrived - changed)


def test_events_of_a_finished_consultation_send_status_and_close(
    fake_server: ServerProcess,
) -> None:
    consultation_id = _upload(fake_server)
    fake_server.wait_terminal(consultation_id)
    with fake_server.client() as client:
        text = client.get(f"/api/consultations/{consultation_id}/events").text
    assert text.count("event: status") == 1
    assert '"status":"completed"' in text


def test_transcript_note_edit_sign_regenerate_delete(fake_server: ServerProcess) -> None:
    consultation_id = _upload(fake_server, patient_ref="MRN-1", title="Follow-up")
    body = fake_server.wait_terminal(consultation_id)
    assert body["status"] == "completed"
    assert body["patient_ref"] == "MRN-1" and body["title"] == "Follow-up"
    assert body["completed_at"] is not None and body["duration_s"] > 4
    base = f"/api/consultations/{consultation_id}"
    with fake_server.client() as client:
        transcript = client.get(f"{base}/transcript").json()
        ids = {u["id"] for u in transcript["utterances"]}
        assert len(ids) >= 5
        speakers = {u["speaker"] for u in transcript["utterances"]}
        # No diarization from this provider: roles come from strong cues only (heuristic).
        assert speakers <= {"doctor", "patient", "unknown"} and "doctor" in speakers

        corrected = client.patch(f"{base}/transcript/utterances/u2", json={"speaker": "patient"})
        assert corrected.status_code == 200, corrected.text
        assert corrected.json()["utterances"][1]["speaker"] == "patient"
        assert client.get(f"{base}/transcript").json()["utterances"][1]["speaker"] == "patient"
        for bad_id, status in (("u999", 404), ("x1", 404)):
            response = client.patch(
                f"{base}/transcript/utterances/{bad_id}", json={"speaker": "doctor"}
            )
            assert response.status_code == status
            assert response.json()["error"]["code"] == "utterance_not_found"
        wrong = client.patch(f"{base}/transcript/utterances/u2", json={"speaker": "nurse"})
        assert wrong.status_code == 422

        note = client.get(f"{base}/note").json()
        assert note["version"] == 1 and note["status"] == "draft"
        assert [s["key"] for s in note["sections"]] == [
            "subjective",
            "objective",
            "assessment",
            "plan",
        ]
        sentences = [s for section in note["sections"] for s in section["sentences"]]
        assert sentences and all(set(s["evidence"]) <= ids and s["evidence"] for s in sentences)
        assert all(s["flags"] == [] for s in sentences)

        # Edit: change a dose -> saved as v2 and flagged unsupported by the verifier.
        sections = [
            {
                "key": s["key"],
                "title": s["title"],
                "sentences": [
                    {"text": x["text"], "evidence": x["evidence"]} for x in s["sentences"]
                ],
            }
            for s in note["sections"]
        ]
        sections[3]["sentences"].append(
            {"text": "Amoxicillin 250 milligrams twice a day.", "evidence": sorted(ids)[:1]}
        )
        edited = client.put(f"{base}/note", json={"sections": sections})
        assert edited.status_code == 200, edited.text
        v2 = edited.json()
        assert v2["version"] == 2 and v2["writer"] == "clinician"
        assert v2["sections"][3]["sentences"][-1]["flags"] == ["unsupported"]
        assert client.get(f"{base}/note", params={"version": 1}).json()["version"] == 1

        bad = client.put(f"{base}/note", json={"sections": [{"key": "x"}]})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"

        stale = client.post(f"{base}/note/sign", json={"signed_by": "Dr A", "version": 1})
        assert stale.status_code == 409
        signed = client.post(f"{base}/note/sign", json={"signed_by": "Dr A"}).json()
        assert signed["status"] == "signed"
        assert signed["signed_by"] == "Dr A (via api key clinician key)"
        again = client.post(f"{base}/note/sign", json={"signed_by": "Dr A"})
        assert again.status_code == 409

        regenerated = client.post(f"{base}/note/regenerate", json={"template": "apso"}).json()
        assert regenerated["version"] == 3 and regenerated["template"] == "apso"
        assert regenerated["sections"][0]["key"] == "assessment"
        unknown = client.post(f"{base}/note/regenerate", json={"template": "nope"})
        assert unknown.status_code == 400

        assert client.delete(base).status_code == 204
        for path in (base, f"{base}/transcript", f"{base}/note", f"{base}/events"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "consultation_not_found"
        assert client.delete(base).status_code == 404
    assert not (fake_server.data_dir / "audio" / consultation_id).exists()
    with fake_server.db() as db:
        for table in ("transcripts", "utterances", "notes", "note_sections", "consultation_events"):
            column = "consultation_id" if table != "note_sections" else "note_id"
            if table == "note_sections":
                assert db.execute("select count(*) from note_sections").fetchone() == (0,)
            else:
                count = db.execute(
                    f"select count(*) from {table} where {column} = ?", (consultation_id,)
                ).fetchone()
                assert count == (0,), table


def test_list_is_newest_first_with_cursor_pagination_and_filter(
    fake_server: ServerProcess,
) -> None:
    ids = [_upload(fake_server) for _ in range(5)]
    for cid in ids:
        fake_server.wait_terminal(cid)
    with fake_server.client() as client:
        seen: list[str] = []
        cursor = None
        for _ in range(5):
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/consultations", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        completed = client.get("/api/consultations", params={"status": "completed"}).json()
        assert len(completed["items"]) == 5
        assert client.get("/api/consultations", params={"status": "failed"}).json()["items"] == []
        assert client.get("/api/consultations", params={"status": "bogus"}).status_code == 422
        bad = client.get("/api/consultations", params={"cursor": "%%%"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"


def test_health_readiness_metrics_and_unknown_ids(fake_server: ServerProcess) -> None:
    with fake_server.client() as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["migrations"] == "ok"
        assert ready["note_engine"] == "ok"
        cid = _upload(fake_server)
        fake_server.wait_terminal(cid)
        metrics = client.get("/metrics").text
        assert "clinscribe_consultations_accepted_total 1.0" in metrics
        assert 'clinscribe_consultations_finished_total{status="completed"} 1.0' in metrics
        assert "clinscribe_stage_duration_seconds_bucket" in metrics
        missing = client.get("/api/consultations/0123456789abcdef0123456789abcdef")
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {"code": "consultation_not_found", "message": "No consultation with this id."}
        }
        assert client.post("/api/consultations/nope/retry").status_code == 404


def test_delete_while_transcribing_cancels_and_leaves_nothing(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.latency_s = 2.0
    consultation_id = _upload(fake_server)
    deadline = time.monotonic() + 20
    while not fake_stt.transcription_requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    with fake_server.client() as client:
        assert client.delete(f"/api/consultations/{consultation_id}").status_code == 204
        time.sleep(3.0)  # the in-flight provider call returns into a deleted consultation
        assert client.get(f"/api/consultations/{consultation_id}").status_code == 404
        # The service is still healthy and processes new work.
        other = _upload(fake_server)
        assert fake_server.wait_terminal(other)["status"] == "completed"
    with fake_server.db() as db:
        for table in ("consultations", "transcripts", "notes", "consultation_events"):
            column = "id" if table == "consultations" else "consultation_id"
            count = db.execute(
                f"select count(*) from {table} where {column} = ?", (consultation_id,)
            ).fetchone()
            assert count == (0,), table
    assert not (fake_server.data_dir / "audio" / consultation_id).exists()


def test_code_suggestions_are_accepted_or_rejected_until_signed(
    fake_server: ServerProcess,
) -> None:
    consultation_id = _upload(fake_server)
    assert fake_server.wait_terminal(consultation_id)["status"] == "completed"
    base = f"/api/consultations/{consultation_id}"
    with fake_server.client() as client:
        note = client.get(f"{base}/note").json()
        # "It's a chest infection; start amoxicillin ..." is in the assessment.
        assert [(c["code"], c["status"]) for c in note["codes"]] == [("J22", "suggested")]
        assert note["codes"][0]["description"].startswith("Unspecified acute lower respiratory")
        accepted = client.patch(f"{base}/note/codes/J22", json={"status": "accepted"})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["codes"][0]["status"] == "accepted"
        assert (
            client.patch(f"{base}/note/codes/I10", json={"status": "accepted"}).json()["error"][
                "code"
            ]
            == "code_not_found"
        )
        bad = client.patch(f"{base}/note/codes/J22", json={"status": "maybe"})
        assert bad.status_code == 422
        # A new version (here: regenerated) keeps the decision.
        regenerated = client.post(f"{base}/note/regenerate", json={"template": "hp"}).json()
        assert [(c["code"], c["status"]) for c in regenerated["codes"]] == [("J22", "accepted")]
        assert client.post(f"{base}/note/sign", json={"signed_by": "Dr A"}).status_code == 200
        locked = client.patch(f"{base}/note/codes/J22", json={"status": "rejected"})
        assert locked.status_code == 409 and locked.json()["error"]["code"] == "already_signed"


def test_a_note_cannot_be_edited_coded_or_signed_while_processing(
    fake_stt: FakeOpenAIServer, fake_server: ServerProcess
) -> None:
    fake_stt.latency_s = 3.0
    consultation_id = _upload(fake_server)
    base = f"/api/consultations/{consultation_id}"
    with fake_server.client() as client:
        for method, path, body in (
            ("POST", "/note/sign", {"signed_by": "Dr A"}),
            ("PUT", "/note", {"sections": [{"key": "plan", "title": "Plan", "sentences": []}]}),
            ("PATCH", "/note/codes/J22", {"status": "accepted"}),
        ):
            response = client.request(method, base + path, json=body)
            assert response.status_code == 409, (path, response.text)
            assert response.json()["error"]["code"] == "not_completed"
    assert fake_server.wait_terminal(consultation_id)["status"] == "completed"


def test_an_upload_repeated_with_its_idempotency_key_creates_one_consultation(
    fake_server: ServerProcess,
) -> None:
    """A client that lost the answer (network drop) sends the recording again with its key."""
    content = SHORT_WAV.read_bytes()
    key = "rec-6f1c2a9e-3b7d-4c55-9a10-0d2f5e8b7c41"
    answers = []
    with fake_server.client() as client:
        for _ in range(3):
            answers.append(
                client.post(
                    "/api/consultations",
                    files={"audio": ("visit.wav", content, "audio/wav")},
                    headers={"Idempotency-Key": key},
                )
            )
        other = client.post(
            "/api/consultations",
            files={"audio": ("visit.wav", content, "audio/wav")},
            headers={"Idempotency-Key": key.replace("rec-", "rec2-")},
        )
        bad = client.post(
            "/api/consultations",
            files={"audio": ("visit.wav", content, "audio/wav")},
            headers={"Idempotency-Key": "no spaces allowed"},
        )
        listed = client.get("/api/consultations").json()["items"]
    assert [a.status_code for a in answers] == [202, 200, 200]
    assert answers[1].headers["idempotent-replayed"] == "true"
    assert len({a.json()["id"] for a in answers}) == 1
    assert other.status_code == 202 and other.json()["id"] != answers[0].json()["id"]
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_idempotency_key"
    assert len(listed) == 2
    # Another clinic sending the same key gets its own consultation, never this one.
    stranger = fake_server.client(fake_server.provision("Other Clinic"))
    with stranger:
        theirs = stranger.post(
            "/api/consultations",
            files={"audio": ("visit.wav", content, "audio/wav")},
            headers={"Idempotency-Key": key},
        )
    assert theirs.status_code == 202 and theirs.json()["id"] != answers[0].json()["id"]
    # Deleted, then sent again with the same key: refused, never a consultation reusing the id.
    first = answers[0].json()["id"]
    fake_server.wait_terminal(first)
    with fake_server.client() as client:
        assert client.delete(f"/api/consultations/{first}").status_code == 204
        reused = client.post(
            "/api/consultations",
            files={"audio": ("visit.wav", content, "audio/wav")},
            headers={"Idempotency-Key": key},
        )
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_used"


def test_an_edit_based_on_an_old_version_is_refused_not_silently_replaced(
    fake_server: ServerProcess,
) -> None:
    consultation_id = _upload(fake_server)
    assert fake_server.wait_terminal(consultation_id)["status"] == "completed"
    url = f"/api/consultations/{consultation_id}/note"
    with fake_server.client() as client:
        note = client.get(url).json()
        sections = [
            {"key": s["key"], "title": s["title"],
             "sentences": [{"text": x["text"], "evidence": x["evidence"]} for x in s["sentences"]]}
            for s in note["sections"]
        ]  # fmt: skip
        first = client.put(url, json={"sections": sections, "base_version": 1})
        assert first.status_code == 200 and first.json()["version"] == 2
        late = client.put(url, json={"sections": sections, "base_version": 1})
        assert late.status_code == 409 and late.json()["error"]["code"] == "stale_version"
        assert "version 2" in late.json()["error"]["message"]
        decision = client.patch(f"{url}/codes/J02.9", json={"status": "accepted", "version": 1})
        assert decision.status_code == 409
        assert decision.json()["error"]["code"] == "stale_version"
        assert client.get(url).json()["version"] == 2  # nothing was saved by the late edit
