"""One reused ONNX Runtime session per model: preprocessed pixels in, L2-normalised vectors out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..similarity import l2_normalise
from .manifest import ONNX_NAME, ModelManifest, is_built
from .preprocess import resize_key, to_input


class ModelNotBuiltError(RuntimeError):
    def __init__(self, directory: Path) -> None:
        int8 = " --precision int8" if directory.name.endswith("-int8") else ""
        super().__init__(f"no verified model in {directory}: run `python -m searchcore build-models{int8}`")


class Encoder:
    """A model's ONNX session plus the manifest that says how to feed it."""

    def __init__(self, directory: Path) -> None:
        if not is_built(directory):
            raise ModelNotBuiltError(directory)
        self.manifest = ModelManifest.load(directory)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no spin-waiting between runs: the two models' thread pools (and, in the app, the web server)
        # take turns on the same cores, and the spinning pool of one slows the other (docs/benchmarks.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(directory / ONNX_NAME), options,
                                            providers=["CPUExecutionProvider"])

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def feature_grid(self) -> tuple[int, int]:
        """(h, w) of the last conv feature map, as the ONNX graph declares it (fixed by the input size)."""
        shape = next(o.shape for o in self.session.get_outputs() if o.name == self.manifest.feature_map_name)
        return int(shape[1]), int(shape[2])

    @property
    def cache_key(self) -> str:
        """Vectors are only interchangeable between identical ONNX files."""
        return f"{self.manifest.name}:{self.manifest.onnx_sha256}"

    @property
    def resize_key(self) -> tuple[tuple[int, int], str]:
        return resize_key(self.manifest.preprocessing)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Raw model output for an already preprocessed float32 batch."""
        return self.session.run([self.manifest.output_name], {self.manifest.input_name: tensor})[0]

    def feature_maps(self, tensor: np.ndarray) -> np.ndarray:
        """The last convolutional feature maps (N x h x w x C) that the vectors are max-pooled from."""
        return self.session.run([self.manifest.feature_map_name], {self.manifest.input_name: tensor})[0]

    def vectors_and_maps(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both outputs of one run: the unit vectors and the feature maps they were pooled from."""
        pooled, maps = self.session.run([self.manifest.output_name, self.manifest.feature_map_name],
                                        {self.manifest.input_name: tensor})
        return l2_normalise(pooled), maps

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """NxHxWx3 uint8 RGB pixels (already resized) to this model's input tensor."""
        return to_input(pixels, self.manifest.preprocessing)

    def vectors(self, tensor: np.ndarray) -> np.ndarray:
        """A preprocessed batch to unit-length float32 vectors."""
        return l2_normalise(self.run(tensor))

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        return self.vectors(self.preprocess(pixels))
