"""Encryption at rest of consultation audio and of transcript and note text (AES-256-GCM).

Text (one database column value)::

    enc1:<key id>:<urlsafe base64 of nonce(12) || ciphertext || tag(16)>

with the column's *purpose* (e.g. ``utterances.text``) as associated data, so a value copied into
another column no longer decrypts. Values without the ``enc1:`` prefix are rows written before
encryption was turned on and are returned as they are.

Files (audio), segmented so they stream and can be read at any offset::

    header  = b"CLSENC1\\n" || key id (16 ascii bytes) || segment size (uint32 BE)
    segment = nonce(12) || ciphertext || tag(16)     # repeated, at least one

Every segment but the last holds exactly ``segment size`` plaintext bytes; the last holds
0..segment size. Segment ``i`` is authenticated with ``header || i (uint64 BE) || final (1 byte)``,
which detects a changed header, reordered segments and truncation, even at a segment boundary.

Rotation: every value and file names the id of the key that sealed it. A new key becomes
CLINSCRIBE_ENCRYPTION_KEY, the old one moves to CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS (still
decrypts), a rotation command re-encrypts whatever ``is_current``/``is_current_file`` rejects,
and then the old key can be dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinscribe.errors import ClinscribeError, ConfigurationError
from clinscribe.streams import SeekableReader

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

KEY_BYTES = 32
TEXT_PREFIX = "enc1:"
FILE_MAGIC = b"CLSENC1\n"
DEFAULT_SEGMENT_SIZE = 1024 * 1024
CURRENT_KEY_VARIABLE = "CLINSCRIBE_ENCRYPTION_KEY"
PREVIOUS_KEYS_VARIABLE = "CLINSCRIBE_PREVIOUS_ENCRYPTION_KEYS"

_NONCE = 12
_TAG = 16
_KEY_ID_LEN = 16
_HEADER = struct.Struct(f">{len(FILE_MAGIC)}s{_KEY_ID_LEN}sI")
_SEGMENT_AAD = struct.Struct(">QB")


class KeyUnavailable(ClinscribeError):
    status_code = 500
    code = "encryption_key_missing"
    retryable = False


class DecryptionFailed(ClinscribeError):
    status_code = 500
    code = "decryption_failed"
    retryable = False


def _damaged() -> DecryptionFailed:
    # Deliberately vague: the message is logged and shown, and must never carry stored data.
    return DecryptionFailed(
        "stored encrypted data could not be decrypted: it is damaged or was altered"
    )


def generate_key() -> str:
    """A new key for CLINSCRIBE_ENCRYPTION_KEY (standard base64 of 32 random bytes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class EncryptionKey:
    id: str
    # repr=False: keys end up in logs and tracebacks through the objects that hold them.
    secret: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> EncryptionKey:
        return cls(id=_key_id(secret), secret=secret)


def _key_id(secret: bytes) -> str:
    # A domain-separated hash, so the id stored beside every record reveals nothing usable.
    return hashlib.sha256(b"clinscribe-key-id:" + secret).hexdigest()[:_KEY_ID_LEN]


def parse_key(text: str, *, variable: str) -> EncryptionKey:
    """Decode a configured key; the error names ``variable`` and never repeats the key."""
    problem = ConfigurationError(
        f"{variable} must be the base64 of {KEY_BYTES} random bytes; "
        "generate one with `clinscribe keys generate`"
    )
    compact = text.strip()
    # Accept the urlsafe alphabet and missing padding: both are common when keys are copied.
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        secret = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise problem from None  # from None: a chained decoder error may quote the key text
    if len(secret) != KEY_BYTES:
        raise problem
    return EncryptionKey.from_secret(secret)


def keyring_from_keys(current: str | None, previous: str | None = None) -> Keyring:
    """The keyring for the two settings' raw values (empty or None current: encryption off)."""
    current_key = (
        parse_key(current, variable=CURRENT_KEY_VARIABLE) if current and current.strip() else None
    )
    older = [
        parse_key(part, variable=PREVIOUS_KEYS_VARIABLE)
        for part in (previous or "").split(",")
        if part.strip()
    ]
    return Keyring(current_key, older)


def is_encrypted_file(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(FILE_MAGIC)) == FILE_MAGIC


class Keyring:
    """The current key (seals new data; None: encryption off) and older keys (only open)."""

    def __init__(
        self, current: EncryptionKey | None, previous: Sequence[EncryptionKey] = ()
    ) -> None:
        self._current = current
        self._keys = {key.id: key for key in previous}
        if current is not None:
            self._keys[current.id] = current

    @property
    def enabled(self) -> bool:
        return self._current is not None

    @property
    def current_key_id(self) -> str | None:
        return None if self._current is None else self._current.id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def _key(self, key_id: str) -> EncryptionKey:
        key = self._keys.get(key_id)
        if key is None:
            raise KeyUnavailable(
                f"data was encrypted with key {key_id}, which is not configured; add that key "
                f"to {PREVIOUS_KEYS_VARIABLE}",
            )
        return key

    # -- text -------------------------------------------------------------------------------

    def encrypt_text(self, plaintext: str, *, purpose: str) -> str:
        if self._current is None:
            return plaintext
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._current.secret).encrypt(
            nonce, plaintext.encode("utf-8"), purpose.encode("utf-8")
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{TEXT_PREFIX}{self._current.id}:{body}"

    def decrypt_text(self, value: str, *, purpose: str) -> str:
        if not value.startswith(TEXT_PREFIX):
            return value
        key_id, _, body = value[len(TEXT_PREFIX) :].partition(":")
        if len(key_id) != _KEY_ID_LEN:
            raise _damaged()
        key = self._key(key_id)
        try:
            raw = base64.b64decode(body.replace("-", "+").replace("_", "/"), validate=True)
            if len(raw) < _NONCE + _TAG:
                raise _damaged()
            plain = AESGCM(key.secret).decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
            return plain.decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag):
            # ValueError also covers a nonce cut short and bytes that are not UTF-8.
            raise _damaged() from None

    def is_current(self, value: str) -> bool:
        if not value.startswith(TEXT_PREFIX):
            return self._current is None
        return self._current is not None and value.startswith(f"{TEXT_PREFIX}{self._current.id}:")

    # -- files ------------------------------------------------------------------------------

    def open_writer(
        self, target: Path, *, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> EncryptedFileWriter:
        """A writer that lands on ``target`` only on a clean close (plaintext if disabled)."""
        return EncryptedFileWriter(target, self._current, segment_size=segment_size)

    def open_reader(self, path: Path) -> BinaryIO:
        """A seekable plaintext view of ``path``, decrypting only the segments read."""
        return self.open_stream_reader(path.open("rb"))

    def open_stream_reader(self, stored: BinaryIO) -> BinaryIO:
        """A seekable plaintext view of a seekable stream of stored bytes (a local file or a
        ranged object-storage reader), which it takes over and closes."""
        try:
            encrypted = stored.read(len(FILE_MAGIC)) == FILE_MAGIC
            stored.seek(0)
            if not encrypted:
                return stored
            return io.BufferedReader(_DecryptingReader(stored, self))
        except BaseException:
            stored.close()
            raise

    def encrypt_file(
        self, source: Path, target: Path, *, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> None:
        """Write ``source`` sealed with the current key (plaintext when encryption is off).

        ``source`` may be plaintext or sealed with any known key, and may be ``target`` itself:
        this is also the re-encryption step of a key rotation.
        """
        with (
            self.open_reader(source) as plain,
            self.open_writer(target, segment_size=segment_size) as out,
        ):
            shutil.copyfileobj(plain, out, DEFAULT_SEGMENT_SIZE)

    def decrypt_file(self, source: Path, target: Path) -> None:
        with self.open_reader(source) as plain, EncryptedFileWriter(target, None) as out:
            shutil.copyfileobj(plain, out, DEFAULT_SEGMENT_SIZE)

    def plaintext_size(self, path: Path) -> int:
        if not is_encrypted_file(path):
            return path.stat().st_size
        with path.open("rb") as file:
            return _Layout.read(file).plaintext_size

    def is_current_file(self, path: Path) -> bool:
        with path.open("rb") as file:
            return self.is_current_stream(file)

    def is_current_stream(self, stored: BinaryIO) -> bool:
        """Whether a seekable stream of stored bytes is sealed with the current key."""
        if stored.read(len(FILE_MAGIC)) != FILE_MAGIC:
            return self._current is None
        stored.seek(0)
        key_id = _Layout.read(stored).key_id
        return self._current is not None and key_id == self._current.id


class EncryptedFileWriter:
    """Streams into a temporary sibling file, renamed onto the target by a clean ``close``.

    Holds at most one segment of plaintext: a full segment is sealed only once more data
    arrives, because only ``close`` tells which segment is the final one.
    """

    def __init__(
        self,
        target: Path,
        key: EncryptionKey | None,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        if not 0 < segment_size < 2**32:
            raise ValueError("segment_size must fit in 1..2**32-1 bytes")
        self._target = target
        self._segment_size = segment_size
        self._aead = None if key is None else AESGCM(key.secret)
        self._pending = bytearray()
        self._index = 0
        # mkstemp creates the file readable by the owner only, which suits patient audio.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self._temp = Path(temp)
        self._file = os.fdopen(fd, "wb")
        self._header = b""
        if key is not None:
            self._header = _HEADER.pack(FILE_MAGIC, key.id.encode("ascii"), segment_size)
            self._file.write(self._header)

    def write(self, data: bytes) -> int:
        if self._aead is None:
            return self._file.write(data)
        view = memoryview(data)
        while view:
            if len(self._pending) == self._segment_size:
                self._seal(final=False)
            take = self._segment_size - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
        return len(data)

    def _seal(self, *, final: bool) -> None:
        assert self._aead is not None
        nonce = os.urandom(_NONCE)
        aad = self._header + _SEGMENT_AAD.pack(self._index, 1 if final else 0)
        self._file.write(nonce + self._aead.encrypt(nonce, bytes(self._pending), aad))
        self._pending.clear()
        self._index += 1

    def close(self) -> None:
        """Seal the final segment and publish the file atomically."""
        if self._file.closed:
            return
        try:
            if self._aead is not None:
                self._seal(final=True)
            self._file.flush()
            os.fsync(self._file.fileno())  # durable before it becomes visible under its name
            self._file.close()
            os.replace(self._temp, self._target)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop everything written; the target is left as it was."""
        self._file.close()
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> EncryptedFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


@dataclass(frozen=True)
class _Layout:
    """Where each segment of an encrypted file lies, derived from the header and file size."""

    header: bytes
    key_id: str
    segment_size: int
    segment_count: int
    last_plain: int  # plaintext bytes in the final segment

    @classmethod
    def read(cls, file: BinaryIO) -> _Layout:
        header = file.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise _damaged()
        magic, raw_id, segment_size = _HEADER.unpack(header)
        body = file.seek(0, io.SEEK_END) - _HEADER.size
        try:
            key_id = raw_id.decode("ascii")
        except UnicodeDecodeError:
            raise _damaged() from None
        if magic != FILE_MAGIC or segment_size == 0 or body < _NONCE + _TAG:
            raise _damaged()
        full, rest = divmod(body, segment_size + _NONCE + _TAG)
        if rest == 0:  # the final segment is a full one
            return cls(header, key_id, segment_size, full, segment_size)
        if rest < _NONCE + _TAG:
            raise _damaged()
        return cls(header, key_id, segment_size, full + 1, rest - _NONCE - _TAG)

    @property
    def plaintext_size(self) -> int:
        return (self.segment_count - 1) * self.segment_size + self.last_plain


class _DecryptingReader(SeekableReader):
    """Random access to an encrypted file, one cached decrypted segment at a time."""

    def __init__(self, stored: BinaryIO, keyring: Keyring) -> None:
        super().__init__()
        self._file = stored
        try:
            self._layout = _Layout.read(self._file)
            self._aead = AESGCM(keyring._key(self._layout.key_id).secret)
        except BaseException:
            self._file.close()
            raise
        self._size = self._layout.plaintext_size
        self._position = 0
        self._cached_index = -1
        self._cached = b""
        # Opening the final segment now catches a changed header or a file cut at a segment
        # boundary before any caller sees data, not only when a read reaches the end.
        try:
            self._segment(self._layout.segment_count - 1)
        except BaseException:
            self._file.close()
            raise

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._position >= self._size:
            return 0
        target = memoryview(buffer).cast("B")
        index, offset = divmod(self._position, self._layout.segment_size)
        plain = self._segment(index)
        count = min(len(target), len(plain) - offset)
        target[:count] = plain[offset : offset + count]
        self._position += count
        return count

    def _segment(self, index: int) -> bytes:
        if index != self._cached_index:
            layout = self._layout
            final = index == layout.segment_count - 1
            plain_len = layout.last_plain if final else layout.segment_size
            self._file.seek(_HEADER.size + index * (layout.segment_size + _NONCE + _TAG))
            sealed = self._file.read(plain_len + _NONCE + _TAG)
            aad = layout.header + _SEGMENT_AAD.pack(index, 1 if final else 0)
            try:
                self._cached = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
            except (InvalidTag, ValueError):
                raise _damaged() from None
            self._cached_index = index
        return self._cached

    def close(self) -> None:
        self._file.close()
        super().close()
