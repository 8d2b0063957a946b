"""What an artifact says about its network: the metadata schema, validated in full.

``ArtifactMetadata`` is the JSON stored beside the arrays of every
``model.npz`` (``artifact.py`` reads and writes the file): the format
version, the architecture (the input shape and the layer list, one strict
schema per layer kind made from the layer classes' own ``settings``), labels,
input spec and pixel scaling, calibration temperature, how the digit score is
computed and where the verdict's thresholds lie, the training summary and
metrics, and the SHA-256 of the arrays. Every setting is bounded and every
field checked, so a tampered or inconsistent artifact fails before anything
is built from it. Version-1 (MLP) metadata is read as the equivalent layer
list.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from .data import INPUT_SHAPE, INPUT_SIZE, PIXEL_SCALE
from .layers import LAYERS, REQUIRED, Layer
from .network import ACTIVATIONS, Network, mlp_layers

__all__ = ["FORMAT", "FORMAT_VERSION", "LEGACY_FORMAT", "MAX_LAYERS", "Architecture", "ArtifactMetadata",
           "DatasetInfo", "InputSpec", "LayerSpec", "Metrics", "OutOfDistribution", "Thresholds"]

FORMAT = "mnist-net-npz"
FORMAT_VERSION = 2
LEGACY_FORMAT = "mnist-mlp-npz"  # version 1: MLPs only
MAX_LAYERS = 64
# The network inputs this code can feed: flat pixels (MLP) or one-channel images (CNN).
INPUT_SHAPES = ((INPUT_SIZE,), (1, *INPUT_SHAPE))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """What the network expects: a 28x28 white-on-black image scaled to [0, 1]."""

    shape: tuple[int, int] = INPUT_SHAPE
    scale: float = PIXEL_SCALE  # float_pixel = uint8_pixel * scale + offset
    offset: float = 0.0
    polarity: Literal["white_on_black"] = "white_on_black"


# -- one schema per layer kind, made from the layer classes' own settings ---------------


def _layer_schema(cls: type[Layer]) -> type[BaseModel]:
    """Return the strict schema of a layer kind: its ``kind`` and each of its ``settings``."""
    fields: dict[str, Any] = {"kind": (Literal[cls.kind], ...)}
    for name, s in cls.settings.items():
        kind = Literal[s.choices] if s.choices else s.type
        default = ... if s.default is REQUIRED else s.default
        fields[name] = (kind, Field(default=default, ge=s.ge, gt=s.gt, le=s.le, lt=s.lt))
    return create_model(f"{cls.__name__}Spec", __base__=_Strict, **fields)


LayerSpec = Annotated[Union[tuple(_layer_schema(cls) for cls in LAYERS.values())], Field(discriminator="kind")]


class Architecture(_Strict):
    """The network: the shape of one input and the layer list (``network.Network``)."""

    input_shape: tuple[int, ...]
    layers: list[LayerSpec] = Field(min_length=1, max_length=MAX_LAYERS)

    @field_validator("input_shape")
    @classmethod
    def _servable(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape not in INPUT_SHAPES:
            raise ValueError(f"input shape {shape} is not one this code feeds ({INPUT_SHAPES})")
        return shape

    @property
    def kind(self) -> str:
        """Return "cnn" when the network has a convolution, else "mlp"."""
        return "cnn" if any(layer.kind == "conv2d" for layer in self.layers) else "mlp"

    def layer_list(self) -> list[dict]:
        return [layer.model_dump() for layer in self.layers]

    def build(self, temperature: float = 1.0) -> Network:
        """Return a zero-weight network of this architecture (ValueError if inconsistent)."""
        return Network(self.input_shape, self.layer_list(), None, temperature)


def _legacy_architecture(arch: Any) -> Any:
    """Return a version-1 ``{"sizes", "activation"}`` architecture as a layer list."""
    if not isinstance(arch, dict) or "sizes" not in arch:
        return arch
    sizes, activation = arch.get("sizes"), arch.get("activation", "relu")
    if (set(arch) - {"sizes", "activation"} or not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and 1 <= s <= 1_000_000 for s in sizes)
            or len(sizes) > MAX_LAYERS + 1 or activation not in ACTIVATIONS):
        raise ValueError(f"invalid version-1 architecture {arch!r}")
    return {"input_shape": [sizes[0]], "layers": mlp_layers(sizes[1:-1], sizes[-1], activation=activation)}


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


class Thresholds(_Strict):
    """The verdict's thresholds (``ood.verdicts``), chosen on validation data."""

    not_a_digit_below: float = Field(ge=0, le=1)  # digit_score under this: "not_a_digit"
    uncertain_below: float = Field(ge=0, le=1)  # else a top probability under this: "uncertain"


class OutOfDistribution(_Strict):
    """How ``digit_score`` is computed (``ood.py``) and where the verdict's thresholds lie.

    ``outlier_output``: the network has one output more than there are labels,
    "not a digit" (trained with outlier exposure). ``platt`` maps the method's
    raw score to [0, 1]; its slope is positive, so the score ranks as the raw
    one. The Mahalanobis method also stores ``ood.means`` and
    ``ood.precision`` among the arrays. ``comparison`` reports how each method
    did on validation data when the artifact was made (not used to serve).
    """

    method: Literal["msp", "energy", "mahalanobis", "outlier"]
    platt: tuple[float, float]
    thresholds: Thresholds
    outlier_output: bool = False
    comparison: list[dict] = []

    @model_validator(mode="after")
    def _sound(self) -> OutOfDistribution:
        a, b = self.platt
        if not (math.isfinite(a) and math.isfinite(b) and 0 < a < 1e6 and abs(b) < 1e6):
            raise ValueError(f"platt must be a finite increasing map (a > 0), got {self.platt}")
        if self.method == "outlier" and not self.outlier_output:
            raise ValueError("the outlier method needs the network's 'not a digit' output")
        return self


class ArtifactMetadata(_Strict):
    """Schema of the JSON metadata stored inside every artifact."""

    format: Literal["mnist-net-npz", "mnist-mlp-npz"] = FORMAT
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
    ood: OutOfDistribution | None = None
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="before")
    @classmethod
    def _read_version_1(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("format") == LEGACY_FORMAT:
            if data.get("format_version") != 1:
                raise ValueError(f"{LEGACY_FORMAT} is format version 1, got {data.get('format_version')}")
            data = {**data, "architecture": _legacy_architecture(data.get("architecture"))}
        return data

    @property
    def legacy(self) -> bool:
        """Return whether this is a version-1 (MLP) artifact."""
        return self.format == LEGACY_FORMAT

    @field_validator("temperature")
    @classmethod
    def _finite(cls, t: float) -> float:
        if not math.isfinite(t) or t > 1e3:
            raise ValueError(f"temperature must be finite and <= 1000, got {t}")
        return t

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactMetadata:
        expected = 1 if self.legacy else FORMAT_VERSION
        if self.format_version != expected:
            raise ValueError(f"format version {self.format_version} is not supported for {self.format} "
                             f"(this code reads {LEGACY_FORMAT} 1 and {FORMAT} {FORMAT_VERSION})")
        if self.input.shape != INPUT_SHAPE:
            raise ValueError(f"input shape {self.input.shape} is not the {INPUT_SHAPE} this code serves")
        if not math.isclose(self.input.scale, PIXEL_SCALE, rel_tol=1e-6) or self.input.offset != 0.0:
            raise ValueError(f"pixel scaling {self.input.scale}x+{self.input.offset} is not the "
                             f"training scaling {PIXEL_SCALE}x+0")
        try:
            net = self.architecture.build()
        except ValueError as exc:
            raise ValueError(f"architecture: {exc}") from None
        extra = 1 if self.ood is not None and self.ood.outlier_output else 0
        if len(self.labels) + extra != net.n_outputs:
            raise ValueError(f"{len(self.labels)} labels{' and a not-a-digit output' if extra else ''} "
                             f"for {net.n_outputs} outputs")
        if self.legacy and self.ood is not None:
            raise ValueError("version-1 artifacts have no ood block")
        return self

    def ood_array_shapes(self, net: Network) -> dict[str, tuple[int, ...]]:
        """Return the shapes of the arrays the ood method stores beside the network's."""
        if self.ood is None or self.ood.method != "mahalanobis":
            return {}
        d = math.prod(net.shapes[-1])
        return {"ood.means": (len(self.labels), d), "ood.precision": (d, d)}
