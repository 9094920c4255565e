"""The JSON manifest next to each ONNX file: the model's contract, preprocessing included."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "model.onnx"


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the input tensor: resize, then x*scale, reorder channels, (x-mean)/std.

    mean and std are given in the model's channel order (after the reorder).
    """

    size: tuple[int, int]
    resize: str
    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str = "NHWC"


@dataclass(frozen=True)
class ModelManifest:
    name: str
    dim: int
    input_name: str
    output_name: str
    feature_map_name: str
    preprocessing: Preprocessing
    pooling: str
    normalise: str
    weights: dict
    onnx_sha256: str
    versions: dict = field(default_factory=dict)
    precision: str = "fp32"  # or "int8": statically quantized from the fp32 build (models/quantize.py)
    calibration: dict = field(default_factory=dict)  # int8 only: the images and method it was calibrated with

    def save(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> "ModelManifest":
        data = json.loads((directory / MANIFEST_NAME).read_text())
        prep = data.pop("preprocessing")
        prep["size"] = tuple(prep["size"])
        prep["mean"] = tuple(prep["mean"])
        prep["std"] = tuple(prep["std"])
        return cls(preprocessing=Preprocessing(**prep), **data)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_built(directory: Path) -> bool:
    """True when the manifest exists and the ONNX file beside it has the recorded SHA-256."""
    onnx_path = directory / ONNX_NAME
    if not (directory / MANIFEST_NAME).is_file() or not onnx_path.is_file():
        return False
    try:
        manifest = ModelManifest.load(directory)
    except (ValueError, TypeError, KeyError):
        return False
    return file_digest(onnx_path) == manifest.onnx_sha256
