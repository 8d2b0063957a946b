"""The NumPy digit classifier: network, data, training and the artifact format.

Nothing in this package imports Flask or Pillow; the maths modules (layers,
losses, optimizers, network, augment, calibration) import only NumPy.
"""

from .artifact import (
    ArtifactMetadata,
    InvalidArtifact,
    LoadedModel,
    build_metadata,
    load_artifact,
    read_metadata,
    save_artifact,
)
from .data import INPUT_SHAPE, INPUT_SIZE, PIXEL_SCALE, load_dataset, scale_pixels
from .network import MLP
from .store import LATEST, ArtifactStore, VersionNotFound

__all__ = [
    "INPUT_SHAPE",
    "INPUT_SIZE",
    "LATEST",
    "MLP",
    "PIXEL_SCALE",
    "ArtifactMetadata",
    "ArtifactStore",
    "InvalidArtifact",
    "LoadedModel",
    "VersionNotFound",
    "build_metadata",
    "load_artifact",
    "load_dataset",
    "read_metadata",
    "save_artifact",
    "scale_pixels",
]
