"""The NumPy digit classifier: network, data, training and the artifact format.

Nothing in this package imports Flask or Pillow; the maths modules (layers,
conv, losses, optimizers, network, augment, calibration) import only NumPy.
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
from .network import Network, cnn_layers, mlp_layers
from .store import LATEST, ArtifactStore, VersionNotFound

__all__ = [
    "INPUT_SHAPE",
    "INPUT_SIZE",
    "LATEST",
    "PIXEL_SCALE",
    "ArtifactMetadata",
    "ArtifactStore",
    "InvalidArtifact",
    "LoadedModel",
    "Network",
    "VersionNotFound",
    "build_metadata",
    "cnn_layers",
    "load_artifact",
    "load_dataset",
    "mlp_layers",
    "read_metadata",
    "save_artifact",
    "scale_pixels",
]
