"""Datasets: the IDX reader, where the files are found, and the pixel scaling.

This module owns the input convention shared by training and serving:
``INPUT_SHAPE`` (28x28, white ink on black, as MNIST) and ``scale_pixels``
(uint8 0..255 -> float32 0..1). The service's preprocessing imports both, so a
served image is scaled exactly like a training image.

Where a dataset is looked for, in order: the ``data_dir`` argument
(``train.py --data-dir``), the ``DATA_DIR`` environment variable, the user
cache (``$XDG_CACHE_HOME/mnist-service/datasets``), system directories
(Debian's ``/usr/share/datasets``). A directory may hold the four files
directly or in a sub-directory named after the dataset; files may be gzipped or
raw. If none has them, the files are downloaded from the canonical mirrors
into the cache, each verified against the SHA-256 of its decompressed bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_atomic

__all__ = [
    "DATASETS",
    "INPUT_SHAPE",
    "INPUT_SIZE",
    "PIXEL_SCALE",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "IDXError",
    "identify",
    "load_dataset",
    "parse_idx",
    "read_idx",
    "scale_pixels",
    "split_validation",
    "write_idx",
]

INPUT_SHAPE = (28, 28)
INPUT_SIZE = INPUT_SHAPE[0] * INPUT_SHAPE[1]
PIXEL_SCALE = 1.0 / 255.0  # uint8 -> [0, 1]; no mean/std shift, so 0 stays "no ink"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class IDXError(ValueError):
    """An IDX file is malformed: wrong magic, truncated, or the wrong size."""


class DatasetError(RuntimeError):
    """A dataset could not be found, downloaded or verified."""


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset: class labels, mirrors, decompressed-file checksums."""

    name: str
    labels: tuple[str, ...]
    mirrors: tuple[str, ...]
    sha256: dict[str, str] = field(repr=False)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        labels=tuple(str(d) for d in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        labels=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}

SYSTEM_DIRS = (Path("/usr/share/datasets"),)

# IDX type codes (the third magic byte) -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """Return uint8 images of shape (n, 28, 28) or (n, 784) as float32 (n, 784) in [0, 1]."""
    images = np.asarray(images)
    flat = images.reshape(images.shape[0], -1)
    if flat.shape[1] != INPUT_SIZE:
        raise ValueError(f"expected {INPUT_SIZE} pixels per image, got {flat.shape[1]}")
    out = flat.astype(np.float32)
    out *= np.float32(PIXEL_SCALE)
    return out


# -- IDX files ----------------------------------------------------------------


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Return the array stored in the IDX bytes ``data``.

    Raises
    ------
    IDXError : bad magic number, unknown type code, or a payload whose length
        does not match the header's dimensions.
    """
    if len(data) < 4:
        raise IDXError(f"{source}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise IDXError(f"{source}: bad IDX magic number 0x{data[:4].hex()} "
                       "(expected 00 00 <type 08..0E> <ndim >= 1>)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{source}: truncated header ({len(data)} bytes, need {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IDXError(f"{source}: file {what}: {len(data)} bytes, header {shape} "
                       f"of {dtype.name} needs {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """Return the file's content, decompressed when gzipped (by magic, not name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IDXError(f"{path}: corrupt or truncated gzip stream ({exc})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Return the array in an IDX file, gzipped or raw."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {v.newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


# -- datasets -------------------------------------------------------------------


@dataclass
class Dataset:
    """A loaded dataset: uint8 images (n, 28, 28) and int64 labels (n,)."""

    name: str
    labels: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str = ""
    sha256: dict[str, str] = field(default_factory=dict)


def cache_dir() -> Path:
    """Return the user cache directory for downloaded datasets."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-service" / "datasets"


def _candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("DATA_DIR"):
        roots.append(Path(os.environ["DATA_DIR"]))
    roots.append(cache_dir())
    roots.extend(SYSTEM_DIRS)
    dirs = []
    for root in roots:
        dirs.extend([root / name, root])
    return dirs


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def identify(directory: str | os.PathLike) -> str | None:
    """Return which known dataset ``directory`` holds, by its test labels' checksum (a small
    file; MNIST and Fashion-MNIST share file names), or None when it holds none of them whole."""
    directory = Path(directory)
    if not all(_find_file(directory, stem) for stem in FILES.values()):
        return None
    digest = hashlib.sha256(_read_bytes(_find_file(directory, FILES["test_labels"]))).hexdigest()
    return next((name for name, spec in DATASETS.items() if spec.sha256[FILES["test_labels"]] == digest), None)


def _locate(name: str, data_dir: str | os.PathLike | None) -> tuple[Path | None, list[Path]]:
    """Return the first directory holding all four files of ``name``, and every place looked.

    A directory holding another known dataset's files (MNIST's four files where
    Fashion-MNIST is looked for: they have the same names) is passed over; one
    holding files of no known dataset is taken, and checked when loaded.
    """
    looked = _candidate_dirs(name, data_dir)
    for directory in looked:
        if all(_find_file(directory, stem) for stem in FILES.values()):
            holds = identify(directory)
            if holds is None or holds == name:
                return directory, looked
    return None, looked


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    verify: bool = True,
    progress: bool = True,
) -> Dataset:
    """Return the dataset ``name``, finding or downloading its files.

    Raises
    ------
    DatasetError : unknown name, files absent everywhere and the download
        failed (the message lists where it looked), or a checksum mismatch.
    IDXError : a file is malformed.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    spec = DATASETS[name]
    directory, looked = _locate(name, data_dir)
    if directory is None:
        if not download:
            raise DatasetError(_not_found_message(spec, looked, None))
        try:
            directory = _download(spec, progress=progress)
        except DatasetError as exc:
            raise DatasetError(_not_found_message(spec, looked, exc)) from None
    arrays, sums = {}, {}
    for key, stem in FILES.items():
        path = _find_file(directory, stem)
        data = _read_bytes(path)
        sums[stem] = hashlib.sha256(data).hexdigest()
        if verify and sums[stem] != spec.sha256[stem]:
            raise DatasetError(
                f"{path}: SHA-256 of the decompressed file is {sums[stem]}, expected "
                f"{spec.sha256[stem]} for {name}; the file is corrupt or another dataset "
                "(pass verify=False / --no-verify to use it anyway)")
        arrays[key] = parse_idx(data, str(path))
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != INPUT_SHAPE or images.dtype != np.uint8:
            raise IDXError(f"{name} {split} images: expected uint8 (n, 28, 28), "
                           f"got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise IDXError(f"{name} {split}: {images.shape[0]} images but labels of shape {labels.shape}")
        if labels.size and labels.max() >= len(spec.labels):
            raise IDXError(f"{name} {split} labels: value {labels.max()} >= {len(spec.labels)} classes")
    return Dataset(
        name=name,
        labels=spec.labels,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        source=str(directory),
        sha256=sums,
    )


def _not_found_message(spec: DatasetSpec, looked: Iterable[Path], error: Exception | None) -> str:
    def place(directory: Path) -> str:
        holds = identify(directory) if directory.is_dir() else None
        return f"{directory} (holds {holds}'s files)" if holds and holds != spec.name else str(directory)

    places = "\n  ".join(place(p) for p in dict.fromkeys(looked))
    files = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
    lines = [f"dataset {spec.name!r} not found. Looked for {files} in:\n  {places}"]
    if error is not None:
        lines.append(f"Download failed: {error}")
    lines.append("Point at local files with --data-dir DIR or the DATA_DIR environment "
                 f"variable (DIR or DIR/{spec.name} holding the four IDX files).")
    return "\n".join(lines)


def _download(spec: DatasetSpec, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download the four files into the cache, verified; return the directory."""
    import requests  # only needed here; keeps the package importable without it
    from tqdm import tqdm

    target = cache_dir() / spec.name
    target.mkdir(parents=True, exist_ok=True)
    errors = []
    for stem in FILES.values():
        if _find_file(target, stem):
            continue
        for mirror in spec.mirrors:
            url = f"{mirror}{stem}.gz"
            try:
                with requests.get(url, stream=True, timeout=timeout) as response:
                    response.raise_for_status()
                    total = int(response.headers.get("Content-Length", 0)) or None
                    chunks = []
                    with tqdm(total=total, unit="B", unit_scale=True, desc=f"{spec.name} {stem}",
                              disable=not progress, leave=False) as bar:
                        for chunk in response.iter_content(1 << 16):
                            chunks.append(chunk)
                            bar.update(len(chunk))
                payload = b"".join(chunks)
                digest = hashlib.sha256(gzip.decompress(payload)).hexdigest()
                if digest != spec.sha256[stem]:
                    raise DatasetError(f"checksum mismatch ({digest})")
            except (requests.RequestException, OSError, EOFError, DatasetError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            write_atomic(target / f"{stem}.gz", lambda f: f.write(payload))
            break
        else:
            raise DatasetError("; ".join(errors[-len(spec.mirrors):]))
    return target


def split_validation(
    images: np.ndarray, labels: np.ndarray, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off a validation set of ``size`` examples, fixed by ``seed``.

    Returns ``(train_images, train_labels, val_images, val_labels)``.
    """
    n = images.shape[0]
    if not 0 <= size < n:
        raise ValueError(f"validation size must be in [0, {n}), got {size}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:size], order[size:]
    return images[train], labels[train], images[val], labels[val]
