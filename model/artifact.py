"""The ``.npz`` model artifact: plain arrays plus one JSON metadata string (``metadata.py``).

An artifact file holds the network's arrays and ``metadata``, a 0-d unicode
array whose text is the JSON of ``ArtifactMetadata``. Format version 2
(``mnist-net-npz``) stores any layer list (``architecture.layers``, see
``network.py``); its arrays are named ``"{layer}.{name}"`` (``"0.W"``,
``"1.running_var"``), weights and running statistics alike. Version 1
(``mnist-mlp-npz``), the original MLP format with ``architecture.sizes`` and
arrays ``W0, b0, W1, b1, ...``, still loads: it is read as the equivalent
layer list, and ``save_artifact`` always writes version 2.

Nothing is pickled: ``load_artifact`` opens a file with ``allow_pickle=False``
and validates everything (member sizes, schema, format version, each layer's
settings, shapes and dtypes against the architecture, finite values, positive
running variances, label count, input spec, temperature, the arrays'
SHA-256) before it builds a network. Every problem raises ``InvalidArtifact``
naming what is wrong.

Where artifacts live and how versions are numbered is ``store.py``'s concern.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from .atomic import write_atomic
from .inference import Predictor
from .metadata import (FORMAT, FORMAT_VERSION, Architecture, ArtifactMetadata, DatasetInfo, InputSpec,
                       OutOfDistribution, Thresholds)
from .network import Network
from .ood import CONFIDENCE_THRESHOLDS, Scorer, Verdicts

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # refuses zip bombs and absurd layers before reading

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArtifactMetadata",
    "InputSpec",
    "InvalidArtifact",
    "OutOfDistribution",
    "Thresholds",
    "LoadedModel",
    "build_metadata",
    "load_artifact",
    "read_metadata",
    "save_artifact",
    "weights_sha256",
]

class InvalidArtifact(ValueError):
    """An artifact file is unreadable, malformed, tampered with or inconsistent."""


@dataclass(frozen=True)
class LoadedModel:
    """A validated artifact: the network, its metadata, and what scores digit-ness."""

    net: Network
    metadata: ArtifactMetadata
    path: Path
    ood_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    @functools.cached_property
    def scorer(self) -> Scorer | None:
        """The artifact's fitted digit score (None for artifacts without an ood block)."""
        ood = self.metadata.ood
        if ood is None:
            return None
        gaussians = ((self.ood_arrays["ood.means"], self.ood_arrays["ood.precision"])
                     if ood.method == "mahalanobis" else None)
        return Scorer(ood.method, ood.platt, gaussians)

    @property
    def thresholds(self) -> Verdicts:
        """The verdict's thresholds chosen when the model was trained (``ood``), or for a model
        without a fitted score the confidence defaults (``ood.CONFIDENCE_THRESHOLDS``)."""
        ood = self.metadata.ood
        if ood is None:
            return CONFIDENCE_THRESHOLDS
        return Verdicts(ood.thresholds.not_a_digit_below, ood.thresholds.uncertain_below)

    @functools.cached_property
    def predictor(self) -> Predictor:
        """The answers of this artifact: (probabilities over the labels, digit scores) for
        float32 inputs (``inference.Predictor``, built on first use)."""
        return Predictor(self.net, len(self.labels), self.scorer)


def weights_sha256(arrays: list[np.ndarray]) -> str:
    """Return the SHA-256 over each array's shape and little-endian float32 bytes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype="<f4")
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _stored_names(metadata: ArtifactMetadata, net: Network) -> dict[str, str]:
    """Return {name in the file: name in ``net.arrays()``} for this artifact's format."""
    if not metadata.legacy:
        return {name: name for name in net.arrays()}
    dense = [i for i, layer in enumerate(net.layers) if layer.kind == "dense"]
    return {f"{p}{k}": f"{i}.{p}" for k, i in enumerate(dense) for p in ("W", "b")}


def build_metadata(net: Network, name: str, labels: list[str], dataset: dict,
                   ood_arrays: dict[str, np.ndarray] | None = None, **fields) -> ArtifactMetadata:
    """Return version-2 metadata for ``net`` (architecture, temperature, hash filled in);
    the hash covers ``ood_arrays`` too."""
    return ArtifactMetadata(
        name=name,
        created_at=fields.pop("created_at", datetime.now(timezone.utc)),
        dataset=DatasetInfo(**dataset),
        labels=list(labels),
        architecture=Architecture(input_shape=net.input_shape, layers=net.spec),
        temperature=net.temperature,
        weights_sha256=weights_sha256([*net.arrays().values(), *(ood_arrays or {}).values()]),
        **fields,
    )


def save_artifact(path: str | os.PathLike, net: Network, metadata: ArtifactMetadata,
                  ood_arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``net``, ``metadata`` and the ood method's arrays to ``path`` atomically; return the path.

    The file is written to a temporary name in the same directory, flushed to
    disk, then renamed, so a reader sees either nothing or the whole file.
    """
    path = Path(path)
    ood_arrays = ood_arrays or {}
    if metadata.legacy:
        raise ValueError("save_artifact writes format version 2: build the metadata with build_metadata")
    if set(ood_arrays) != set(metadata.ood_array_shapes(net)):
        raise ValueError(f"the ood method needs arrays {sorted(metadata.ood_array_shapes(net))}, "
                         f"got {sorted(ood_arrays)}")
    if metadata.weights_sha256 != weights_sha256([*net.arrays().values(), *ood_arrays.values()]):
        raise ValueError("metadata.weights_sha256 does not match the network's weights")
    if (metadata.architecture.layer_list() != net.spec or metadata.architecture.input_shape != net.input_shape
            or metadata.temperature != net.temperature):
        raise ValueError("metadata architecture/temperature do not match the network")
    arrays = {name: np.ascontiguousarray(a, dtype="<f4") for name, a in [*net.arrays().items(),
                                                                        *ood_arrays.items()]}
    arrays["metadata"] = np.array(metadata.model_dump_json())
    write_atomic(path, lambda f: np.savez(f, **arrays), mode=0o644)  # the service may run as another user
    return path


def read_metadata(path: str | os.PathLike) -> ArtifactMetadata:
    """Return the validated metadata of an artifact without reading its arrays."""
    return _open(Path(path))[0]


def load_artifact(path: str | os.PathLike) -> LoadedModel:
    """Load and fully validate the artifact at ``path``.

    Raises
    ------
    InvalidArtifact : unreadable file, pickled or unexpected members, metadata
        that fails the schema, shapes or dtypes that contradict the
        architecture, non-finite values, negative running variances, or
        arrays whose SHA-256 differs from the recorded one.
    """
    path = Path(path)
    metadata, net, ood_arrays = _open(path, with_arrays=True)
    return LoadedModel(net=net, metadata=metadata, path=path, ood_arrays=ood_arrays)


def _open(path: Path, with_arrays: bool = False
          ) -> tuple[ArtifactMetadata, Network | None, dict[str, np.ndarray]]:
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            metadata = _parse_metadata(npz, path)
            net = metadata.architecture.build(metadata.temperature)
            names = {**_stored_names(metadata, net), **{n: n for n in metadata.ood_array_shapes(net)}}
            unexpected = set(npz.files) - set(names) - {"metadata"}
            missing = [n for n in names if n not in npz.files]
            if unexpected or missing:
                raise InvalidArtifact(f"{path}: arrays do not match the architecture "
                                      f"(missing {missing}, unexpected {sorted(unexpected)})")
            if not with_arrays:
                return metadata, None, {}
            arrays = {stored: npz[stored] for stored in names}
    except InvalidArtifact:
        raise
    except FileNotFoundError:
        raise InvalidArtifact(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns a pickled member into a ValueError here.
        raise InvalidArtifact(f"{path}: unreadable artifact ({type(exc).__name__}: {exc})") from None
    _check_arrays(path, metadata, net, names, arrays)
    ood_names = set(metadata.ood_array_shapes(net))
    net.set_arrays({names[stored]: a for stored, a in arrays.items() if stored not in ood_names})
    return metadata, net, {n: arrays[n].astype(np.float64) for n in ood_names}


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


def _check_arrays(path: Path, metadata: ArtifactMetadata, net: Network, names: dict[str, str],
                  arrays: dict[str, np.ndarray]) -> None:
    """Check every array's dtype, shape (from the architecture), values and the hash over all."""
    expected = {**net.array_shapes(), **metadata.ood_array_shapes(net)}
    for stored, a in arrays.items():
        if a.dtype != np.float32:
            raise InvalidArtifact(f"{path}: {stored} has dtype {a.dtype}, expected float32")
        shape = expected[names[stored]]
        if a.shape != shape:
            raise InvalidArtifact(f"{path}: {stored} has shape {a.shape}, expected {shape} "
                                  f"from the architecture")
        if not np.isfinite(a).all():
            raise InvalidArtifact(f"{path}: {stored} contains NaN or infinite values")
        if stored.endswith("running_var") and (a < 0).any():
            raise InvalidArtifact(f"{path}: {stored} has negative variances")
        if stored == "ood.precision" and not np.allclose(a, a.T, rtol=1e-4, atol=1e-6):
            raise InvalidArtifact(f"{path}: {stored} is not symmetric")
    digest = weights_sha256(list(arrays.values()))
    if digest != metadata.weights_sha256:
        raise InvalidArtifact(f"{path}: weights SHA-256 {digest} does not match the recorded "
                              f"{metadata.weights_sha256} (tampered or corrupt)")
