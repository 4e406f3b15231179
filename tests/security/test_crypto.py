"""Encryption at rest: text values and segmented files, on real files, with real keys."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import av
import pytest

from clinscribe.errors import ConfigurationError
from clinscribe.security.crypto import (
    DecryptionFailed,
    EncryptionKey,
    Keyring,
    KeyUnavailable,
    generate_key,
    is_encrypted_file,
    keyring_from_keys,
    parse_key,
)
from tests.support.audio import SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

SEGMENT = 64
HEADER = 28  # magic 8 + key id 16 + segment size 4
SEALED_SEGMENT = SEGMENT + 12 + 16
MARKER = b"PATIENT-DOE-MARKER"
PURPOSE = "utterances.text"


def new_key() -> EncryptionKey:
    return parse_key(generate_key(), variable="CLINSCRIBE_ENCRYPTION_KEY")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(new_key())


def sample(size: int) -> bytes:
    """Plaintext that repeats a recognisable marker, so leaks are easy to spot."""
    return (MARKER * (size // len(MARKER) + 1))[:size]


def sealed_file(keyring: Keyring, tmp_path: Path, plain: bytes) -> Path:
    source, target = tmp_path / "plain.bin", tmp_path / "sealed.bin"
    source.write_bytes(plain)
    keyring.encrypt_file(source, target, segment_size=SEGMENT)
    return target


def read_all(keyring: Keyring, path: Path) -> bytes:
    with keyring.open_reader(path) as reader:
        return reader.read()


# -- keys -------------------------------------------------------------------------------------


def test_generated_key_is_standard_base64_of_32_bytes() -> None:
    text = generate_key()
    assert len(base64.b64decode(text, validate=True)) == 32
    assert generate_key() != text


def test_key_id_is_stable_and_repr_hides_secret() -> None:
    secret = bytes(range(32))
    text = base64.b64encode(secret).decode()
    key = parse_key(f"  {text}\n", variable="X")
    urlsafe = parse_key(base64.urlsafe_b64encode(secret).decode().rstrip("="), variable="X")
    assert key == urlsafe
    expected_id = hashlib.sha256(b"clinscribe-key-id:" + secret).hexdigest()[:16]
    assert key.id == expected_id and key.secret == secret
    assert key.id == parse_key(text, variable="X").id
    assert text not in repr(key) and repr(secret) not in repr(key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64 at all!!",
        base64.b64encode(b"k" * 16).decode(),  # AES-128 sized: too short
        base64.b64encode(b"k" * 33).decode(),
        "@@" + base64.b64encode(b"k" * 32).decode(),
    ],
)
def test_parse_key_rejects_with_variable_name_and_without_key(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_key(text, variable="CLINSCRIBE_ENCRYPTION_KEY")
    message = caught.value.message
    assert "CLINSCRIBE_ENCRYPTION_KEY" in message
    assert "clinscribe keys generate" in message
    assert text.strip() == "" or text not in message
    # The decoder's own error is hidden from tracebacks (it may quote the input).
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_keyring_from_settings_names_the_previous_keys_variable() -> None:
    current, old = generate_key(), generate_key()
    keyring = keyring_from_keys(current, f" {old} ,")
    assert keyring.enabled and len(keyring.key_ids) == 2
    assert not keyring_from_keys(None, old).enabled
    with pytest.raises(ConfigurationError, match="CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS"):
        keyring_from_keys(current, "short")


# -- text -------------------------------------------------------------------------------------


def test_text_round_trip(keyring: Keyring) -> None:
    plain = "Patient reports chest pain since Tuesday — நெஞ்சு வலி"
    sealed = keyring.encrypt_text(plain, purpose=PURPOSE)
    assert sealed.startswith(f"enc1:{keyring.current_key_id}:")
    assert "chest" not in sealed
    assert sealed != keyring.encrypt_text(plain, purpose=PURPOSE)  # fresh nonce each time
    assert keyring.decrypt_text(sealed, purpose=PURPOSE) == plain
    assert keyring.is_current(sealed)


def test_value_moved_to_another_column_fails(keyring: Keyring) -> None:
    sealed = keyring.encrypt_text("metformin 500 mg", purpose=PURPOSE)
    with pytest.raises(DecryptionFailed):
        keyring.decrypt_text(sealed, purpose="notes.body")


def test_unknown_key_names_the_key_id_and_not_the_secret(keyring: Keyring) -> None:
    other = new_key()
    sealed = Keyring(other).encrypt_text("secret plan", purpose=PURPOSE)
    with pytest.raises(KeyUnavailable) as caught:
        keyring.decrypt_text(sealed, purpose=PURPOSE)
    message = caught.value.message
    assert other.id in message and "CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS" in message
    assert base64.b64encode(other.secret).decode() not in message
    assert caught.value.code == "encryption_key_missing" and caught.value.status_code == 500


def test_previous_key_still_decrypts_after_rotation() -> None:
    old, new = new_key(), new_key()
    sealed = Keyring(old).encrypt_text("BP 140/90", purpose=PURPOSE)
    rotated = Keyring(new, [old])
    assert not rotated.is_current(sealed)
    assert rotated.decrypt_text(sealed, purpose=PURPOSE) == "BP 140/90"
    resealed = rotated.encrypt_text(rotated.decrypt_text(sealed, purpose=PURPOSE), purpose=PURPOSE)
    assert rotated.is_current(resealed)
    assert rotated.key_ids == {old.id, new.id}


def test_disabled_keyring_passes_plaintext_both_ways() -> None:
    off = Keyring(None)
    assert not off.enabled and off.current_key_id is None
    assert off.encrypt_text("plain note", purpose=PURPOSE) == "plain note"
    assert off.decrypt_text("plain note", purpose=PURPOSE) == "plain note"
    assert off.is_current("plain note")
    assert not off.is_current(Keyring(new_key()).encrypt_text("x", purpose=PURPOSE))


def test_legacy_plaintext_row_is_returned_unchanged(keyring: Keyring) -> None:
    assert keyring.decrypt_text("written before encryption", purpose=PURPOSE) == (
        "written before encryption"
    )
    assert not keyring.is_current("written before encryption")


@pytest.mark.parametrize("position", [5 + 16 + 1, -1, -20])
def test_tampered_text_fails(keyring: Keyring, position: int) -> None:
    sealed = keyring.encrypt_text("allergic to penicillin", purpose=PURPOSE)
    flipped = "A" if sealed[position] != "A" else "B"
    tampered = sealed[:position] + flipped + sealed[position + 1 :]
    with pytest.raises(DecryptionFailed) as caught:
        keyring.decrypt_text(tampered, purpose=PURPOSE)
    assert "penicillin" not in caught.value.message


def test_truncated_text_fails(keyring: Keyring) -> None:
    sealed = keyring.encrypt_text("x", purpose=PURPOSE)
    for cut in (sealed[:-4], sealed[: 5 + 16 + 1 + 8], "enc1:short:AAAA"):
        with pytest.raises(DecryptionFailed):
            keyring.decrypt_text(cut, purpose=PURPOSE)


# -- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, SEGMENT * 3 + SEGMENT // 2]
)
def test_file_round_trip(keyring: Keyring, tmp_path: Path, size: int) -> None:
    plain = sample(size)
    sealed = sealed_file(keyring, tmp_path, plain)
    segments = max(1, -(-size // SEGMENT))
    assert sealed.stat().st_size == HEADER + segments * 28 + size
    assert is_encrypted_file(sealed) and keyring.is_current_file(sealed)
    assert keyring.plaintext_size(sealed) == size
    assert read_all(keyring, sealed) == plain
    keyring.decrypt_file(sealed, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == plain


def test_encrypted_file_holds_no_plaintext(keyring: Keyring, tmp_path: Path) -> None:
    plain = SHORT_WAV.read_bytes()[:4096] + sample(1000)
    raw = sealed_file(keyring, tmp_path, plain).read_bytes()
    assert b"RIFF" not in raw and b"WAVE" not in raw and MARKER[:8] not in raw


def test_writer_streams_many_small_writes(keyring: Keyring, tmp_path: Path) -> None:
    plain = sample(SEGMENT * 5 + 7)
    target = tmp_path / "audio.enc"
    with keyring.open_writer(target, segment_size=SEGMENT) as writer:
        for start in range(0, len(plain), 13):
            assert writer.write(plain[start : start + 13]) == len(plain[start : start + 13])
        assert not target.exists()  # published only on close
    assert read_all(keyring, target) == plain


def cut_at_boundary(raw: bytes) -> bytes:
    return raw[: HEADER + 2 * SEALED_SEGMENT]


def cut_mid_segment(raw: bytes) -> bytes:
    return raw[: HEADER + 2 * SEALED_SEGMENT + 40]


def cut_to_header(raw: bytes) -> bytes:
    return raw[: HEADER + 10]


def swap_segments(raw: bytes) -> bytes:
    first = raw[HEADER : HEADER + SEALED_SEGMENT]
    second = raw[HEADER + SEALED_SEGMENT : HEADER + 2 * SEALED_SEGMENT]
    return raw[:HEADER] + second + first + raw[HEADER + 2 * SEALED_SEGMENT :]


def flip_segment_size(raw: bytes) -> bytes:
    return raw[: HEADER - 1] + bytes([raw[HEADER - 1] ^ 0x01]) + raw[HEADER:]


def flip_ciphertext(raw: bytes) -> bytes:
    position = HEADER + SEALED_SEGMENT + 20
    return raw[:position] + bytes([raw[position] ^ 0x80]) + raw[position + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        cut_at_boundary,
        cut_mid_segment,
        cut_to_header,
        swap_segments,
        flip_segment_size,
        flip_ciphertext,
    ],
)
def test_damaged_file_fails_on_read(
    keyring: Keyring, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    sealed = sealed_file(keyring, tmp_path, sample(SEGMENT * 3 + 10))
    sealed.write_bytes(damage(sealed.read_bytes()))
    assert is_encrypted_file(sealed)
    with pytest.raises(DecryptionFailed) as caught:
        read_all(keyring, sealed)
    assert MARKER.decode() not in caught.value.message
    with pytest.raises(DecryptionFailed):
        keyring.decrypt_file(sealed, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_file_cut_at_segment_boundary_fails_at_open(keyring: Keyring, tmp_path: Path) -> None:
    # The final segment is checked on open, so no caller streams a silently shortened file.
    sealed = sealed_file(keyring, tmp_path, sample(SEGMENT * 3 + 10))
    sealed.write_bytes(cut_at_boundary(sealed.read_bytes()))
    with pytest.raises(DecryptionFailed):
        keyring.open_reader(sealed)


def test_file_sealed_with_unknown_key_names_it(keyring: Keyring, tmp_path: Path) -> None:
    other = Keyring(new_key())
    sealed = sealed_file(other, tmp_path, sample(100))
    assert not keyring.is_current_file(sealed)
    with pytest.raises(KeyUnavailable, match=str(other.current_key_id)):
        keyring.open_reader(sealed)


def test_random_seek_and_read_match_plaintext(keyring: Keyring, tmp_path: Path) -> None:
    plain = sample(SEGMENT * 7 + 23)
    rng = random.Random(1234)
    with keyring.open_reader(sealed_file(keyring, tmp_path, plain)) as reader:
        assert reader.seekable()
        assert reader.seek(0, 2) == len(plain) and reader.tell() == len(plain)
        assert reader.read(10) == b""
        for _ in range(300):
            start = rng.randrange(0, len(plain) + 5)
            length = rng.randrange(0, SEGMENT * 3)
            if rng.random() < 0.5:
                reader.seek(start)
            else:
                reader.seek(start - len(plain), 2)
            assert reader.read(length) == plain[start : start + length]
            assert reader.tell() == min(start + length, max(start, len(plain)))


def test_writer_exception_leaves_no_target_and_no_temp(keyring: Keyring, tmp_path: Path) -> None:
    target = tmp_path / "audio.enc"
    target.write_bytes(b"previous version")
    with pytest.raises(RuntimeError), keyring.open_writer(target, segment_size=SEGMENT) as writer:
        writer.write(sample(SEGMENT * 3))
        raise RuntimeError("upload interrupted")
    assert target.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.enc"]


def test_disabled_keyring_writes_and_reads_plaintext_atomically(tmp_path: Path) -> None:
    off = Keyring(None)
    target = tmp_path / "audio.wav"
    with off.open_writer(target) as writer:
        writer.write(MARKER)
    assert target.read_bytes() == MARKER
    assert off.is_current_file(target) and not is_encrypted_file(target)
    assert off.plaintext_size(target) == len(MARKER)
    with off.open_reader(target) as reader:
        assert reader.read() == MARKER
    with pytest.raises(ValueError), off.open_writer(tmp_path / "other.wav") as writer:
        writer.write(MARKER)
        raise ValueError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.wav"]


def test_rotation_reencrypts_file_in_place(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    plain = sample(SEGMENT * 2 + 5)
    legacy = tmp_path / "legacy.wav"
    legacy.write_bytes(plain)
    sealed = sealed_file(Keyring(old), tmp_path, plain)
    rotated = Keyring(new, [old])
    for path in (sealed, legacy):
        assert not rotated.is_current_file(path)
        rotated.encrypt_file(path, path, segment_size=SEGMENT)
        assert rotated.is_current_file(path)
        assert read_all(Keyring(new), path) == plain
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy.wav", "plain.bin", "sealed.bin"]


def decoded_samples(source: str | BinaryIO) -> int:
    total = 0
    with av.open(source, mode="r") as container:
        for frame in container.decode(audio=0):
            total += frame.samples
    return total


def test_pyav_decodes_through_the_reader(keyring: Keyring, tmp_path: Path) -> None:
    sealed = tmp_path / "short_en.wav.enc"
    keyring.encrypt_file(SHORT_WAV, sealed, segment_size=4096)
    expected = decoded_samples(str(SHORT_WAV))
    assert expected > 0
    with keyring.open_reader(sealed) as reader:
        assert decoded_samples(reader) == expected
