"""The ``.npz`` model artifact: plain arrays plus one JSON metadata string.

An artifact file holds ``W0, b0, W1, b1, ...`` (float32, ``W{i}`` of shape
``(sizes[i], sizes[i+1])``) and ``metadata``, a 0-d unicode array whose text is
the JSON of ``ArtifactMetadata``. Nothing is pickled: ``load_artifact`` opens
it with ``allow_pickle=False`` and validates everything (member sizes, schema,
format version, shapes and dtypes against the architecture, finite values,
label count, input spec, temperature, the weights' SHA-256) before it builds
a network. Every problem raises ``InvalidArtifact`` naming what is wrong.

Where artifacts live and how versions are numbered is ``store.py``'s concern.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .data import INPUT_SHAPE, PIXEL_SCALE
from .network import ACTIVATIONS, MLP

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArtifactMetadata",
    "InputSpec",
    "InvalidArtifact",
    "LoadedModel",
    "load_artifact",
    "save_artifact",
    "weights_sha256",
]

FORMAT = "mnist-mlp-npz"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 256 * 1024 * 1024  # refuses zip bombs and absurd layers before reading
MAX_LAYERS = 64


class InvalidArtifact(ValueError):
    """An artifact file is unreadable, malformed, tampered with or inconsistent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """What the network expects: a 28x28 white-on-black image scaled to [0, 1]."""

    shape: tuple[int, int] = INPUT_SHAPE
    scale: float = PIXEL_SCALE  # float_pixel = uint8_pixel * scale + offset
    offset: float = 0.0
    polarity: Literal["white_on_black"] = "white_on_black"


class Architecture(_Strict):
    sizes: list[int] = Field(min_length=2, max_length=MAX_LAYERS + 1)
    activation: str = "relu"

    @field_validator("sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if min(sizes) < 1 or max(sizes) > 1_000_000:
            raise ValueError(f"layer sizes must be in [1, 1e6], got {sizes}")
        return sizes

    @field_validator("activation")
    @classmethod
    def _known(cls, activation: str) -> str:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        return activation


class DatasetInfo(_Strict):
    name: str
    sha256: dict[str, str] = {}
    train_size: int = 0
    val_size: int = 0
    test_size: int = 0


class Metrics(BaseModel):
    """Evaluation figures; extra keys are kept (they are reported, not used)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    test_accuracy: float | None = Field(default=None, ge=0, le=1)
    test_loss: float | None = None
    val_accuracy: float | None = Field(default=None, ge=0, le=1)
    val_loss: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None
    per_class_accuracy: list[float] | None = None


class ArtifactMetadata(_Strict):
    """Schema of the JSON metadata stored inside every artifact."""

    format: Literal["mnist-mlp-npz"] = FORMAT
    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    created_at: datetime
    dataset: DatasetInfo
    labels: list[str] = Field(min_length=2, max_length=10_000)
    architecture: Architecture
    input: InputSpec = InputSpec()
    temperature: float = Field(default=1.0, gt=0)
    metrics: Metrics = Metrics()
    training: dict = {}
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("format_version")
    @classmethod
    def _supported(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version} is not supported (this code reads {FORMAT_VERSION})")
        return version

    @field_validator("temperature")
    @classmethod
    def _finite(cls, t: float) -> float:
        if not math.isfinite(t) or t > 1e3:
            raise ValueError(f"temperature must be finite and <= 1000, got {t}")
        return t

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactMetadata:
        sizes = self.architecture.sizes
        n_inputs = self.input.shape[0] * self.input.shape[1]
        if self.input.shape != INPUT_SHAPE:
            raise ValueError(f"input shape {self.input.shape} is not the {INPUT_SHAPE} this code serves")
        if sizes[0] != n_inputs:
            raise ValueError(f"first layer takes {sizes[0]} inputs but the input spec has {n_inputs} pixels")
        if len(self.labels) != sizes[-1]:
            raise ValueError(f"{len(self.labels)} labels for {sizes[-1]} outputs")
        if not math.isclose(self.input.scale, PIXEL_SCALE, rel_tol=1e-6) or self.input.offset != 0.0:
            raise ValueError(f"pixel scaling {self.input.scale}x+{self.input.offset} is not the "
                             f"training scaling {PIXEL_SCALE}x+0")
        return self


@dataclass(frozen=True)
class LoadedModel:
    """A validated artifact: the network and its metadata."""

    net: MLP
    metadata: ArtifactMetadata
    path: Path

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.net.predict_proba(X)


def weights_sha256(arrays: list[np.ndarray]) -> str:
    """Return the SHA-256 over each array's shape and little-endian float32 bytes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype="<f4")
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _array_names(n_dense: int) -> list[str]:
    return [name for i in range(n_dense) for name in (f"W{i}", f"b{i}")]


def build_metadata(net: MLP, name: str, labels: list[str], dataset: dict, **fields) -> ArtifactMetadata:
    """Return metadata for ``net`` (architecture, temperature, hash filled in)."""
    return ArtifactMetadata(
        name=name,
        created_at=fields.pop("created_at", datetime.now(timezone.utc)),
        dataset=DatasetInfo(**dataset),
        labels=list(labels),
        architecture=Architecture(sizes=net.sizes, activation=net.activation),
        temperature=net.temperature,
        weights_sha256=weights_sha256(net.params),
        **fields,
    )


def save_artifact(path: str | os.PathLike, net: MLP, metadata: ArtifactMetadata) -> Path:
    """Write ``net`` and ``metadata`` to ``path`` atomically; return the path.

    The file is written to a temporary name in the same directory, flushed to
    disk, then renamed, so a reader sees either nothing or the whole file.
    """
    path = Path(path)
    if metadata.weights_sha256 != weights_sha256(net.params):
        raise ValueError("metadata.weights_sha256 does not match the network's weights")
    if metadata.architecture.sizes != net.sizes or metadata.temperature != net.temperature:
        raise ValueError("metadata architecture/temperature do not match the network")
    arrays = {name: np.ascontiguousarray(p, dtype="<f4")
              for name, p in zip(_array_names(len(net.dense)), net.params)}
    arrays["metadata"] = np.array(metadata.model_dump_json())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the service may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | os.PathLike) -> ArtifactMetadata:
    """Return the validated metadata of an artifact without building the network."""
    return _open(Path(path))[0]


def load_artifact(path: str | os.PathLike) -> LoadedModel:
    """Load and fully validate the artifact at ``path``.

    Raises
    ------
    InvalidArtifact : unreadable file, pickled or unexpected members, metadata
        that fails the schema, shapes or dtypes that contradict the
        architecture, non-finite values, or weights whose SHA-256 differs from
        the recorded one.
    """
    path = Path(path)
    metadata, arrays = _open(path, with_arrays=True)
    net = MLP(metadata.architecture.sizes, None, activation=metadata.architecture.activation,
              temperature=metadata.temperature)
    net.set_weights(arrays)
    return LoadedModel(net=net, metadata=metadata, path=path)


def _open(path: Path, with_arrays: bool = False) -> tuple[ArtifactMetadata, list[np.ndarray]]:
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            metadata = _parse_metadata(npz, path)
            names = _array_names(len(metadata.architecture.sizes) - 1)
            unexpected = set(npz.files) - set(names) - {"metadata"}
            missing = [n for n in names if n not in npz.files]
            if unexpected or missing:
                raise InvalidArtifact(f"{path}: arrays do not match the architecture "
                                      f"(missing {missing}, unexpected {sorted(unexpected)})")
            if not with_arrays:
                return metadata, []
            arrays = [npz[n] for n in names]
    except InvalidArtifact:
        raise
    except FileNotFoundError:
        raise InvalidArtifact(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns a pickled member into a ValueError here.
        raise InvalidArtifact(f"{path}: unreadable artifact ({type(exc).__name__}: {exc})") from None
    _check_arrays(path, metadata, names, arrays)
    return metadata, arrays


def _check_members(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.file_size > MAX_MEMBER_BYTES:
                raise InvalidArtifact(f"{path}: member {info.filename} declares {info.file_size} "
                                      f"bytes (limit {MAX_MEMBER_BYTES})")


def _parse_metadata(npz, path: Path) -> ArtifactMetadata:
    if "metadata" not in npz.files:
        raise InvalidArtifact(f"{path}: no metadata entry")
    raw = npz["metadata"]
    if raw.shape != () or raw.dtype.kind != "U":
        raise InvalidArtifact(f"{path}: metadata must be a 0-d unicode array, got {raw.dtype} {raw.shape}")
    try:
        return ArtifactMetadata.model_validate(json.loads(str(raw)))
    except json.JSONDecodeError as exc:
        raise InvalidArtifact(f"{path}: metadata is not valid JSON ({exc})") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidArtifact(f"{path}: invalid metadata: {problems}") from None


def _check_arrays(path: Path, metadata: ArtifactMetadata, names: list[str],
                  arrays: list[np.ndarray]) -> None:
    sizes = metadata.architecture.sizes
    for i, (name, a) in enumerate(zip(names, arrays)):
        layer = i // 2
        expected = (sizes[layer], sizes[layer + 1]) if name[0] == "W" else (sizes[layer + 1],)
        if a.dtype != np.float32:
            raise InvalidArtifact(f"{path}: {name} has dtype {a.dtype}, expected float32")
        if a.shape != expected:
            raise InvalidArtifact(f"{path}: {name} has shape {a.shape}, expected {expected} "
                                  f"from architecture {sizes}")
        if not np.isfinite(a).all():
            raise InvalidArtifact(f"{path}: {name} contains NaN or infinite values")
    digest = weights_sha256(arrays)
    if digest != metadata.weights_sha256:
        raise InvalidArtifact(f"{path}: weights SHA-256 {digest} does not match the recorded "
                              f"{metadata.weights_sha256} (tampered or corrupt)")
