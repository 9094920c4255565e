"""Build the int8 model from a built fp32 one: static QDQ quantization with ONNX Runtime, calibrated on
the bundled CC0 / public-domain sample photos and seeded edits of them (never on evaluation data).

Run as `python -m models.quantize --fp32 DIR --out DIR` (searchcore's `build-models --precision int8`
does this, one subprocess per model). The manifest of the int8 model is the fp32 one plus its
precision, the calibration it was made with and how close its vectors stay to the fp32 model's.
"""
from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance

from searchcore.encoding.encoder import Encoder
from searchcore.encoding.manifest import ONNX_NAME, ModelManifest, Preprocessing, file_digest
from searchcore.encoding.preprocess import resize, resize_key, to_input
from searchcore.files.decode import decode, read_raw
from searchcore.files.samples import sample_files

from . import canonical

log = logging.getLogger("models")

SEED = 0
EDITS_PER_PHOTO = 4  # besides the photo itself: a mirrored crop, a turn, a darker and a brighter crop
METHOD = "MinMax"
# 7-bit weights: x86 CPUs without AVX-512 VNNI multiply u8 x s8 pairs into int16 sums that saturate with
# full 8-bit weights, so the same model loses accuracy there (onnxruntime's quantization docs); with one bit
# less no sum saturates, and the model gives the same vectors on every x86 CPU.
REDUCE_RANGE = True
MIN_MEDIAN_COSINE = 0.98  # the int8 vectors' median cosine to the fp32 vectors, checked at build time


def calibration_images(prep: Preprocessing, seed: int = SEED) -> np.ndarray:
    """The sample photos plus EDITS_PER_PHOTO seeded edits of each, as the model's input tensor."""
    rng = random.Random(seed)
    images = []
    for path in sample_files():
        photo = decode(read_raw(path), 10**9)
        images += [photo, *(_edit(photo, i, rng) for i in range(EDITS_PER_PHOTO))]
    return to_input(np.stack([resize(im, resize_key(prep)) for im in images]), prep)


def _edit(photo: Image.Image, which: int, rng: random.Random) -> Image.Image:
    w, h = photo.size
    share = rng.uniform(0.5, 0.9)
    cw, ch = int(w * share), int(h * share)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = photo.crop((left, top, left + cw, top + ch))
    if which == 0:
        return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if which == 1:
        return photo.rotate(rng.choice((90, 180, 270)), expand=True)
    return ImageEnhance.Brightness(crop).enhance(0.6 if which == 2 else 1.4)


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over a ready tensor, a few images at a time."""

    def __init__(self, input_name: str, tensor: np.ndarray, batch: int = 8) -> None:
        self.batches = iter([{input_name: tensor[i:i + batch]} for i in range(0, len(tensor), batch)])

    def get_next(self):
        return next(self.batches, None)


def quantize(fp32_dir: Path, out: Path) -> ModelManifest:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32 = Encoder(fp32_dir)
    manifest = fp32.manifest
    tensor = calibration_images(manifest.preprocessing)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        prepared, onnx_path = Path(tmp) / "prepared.onnx", Path(tmp) / ONNX_NAME
        quant_pre_process(str(fp32_dir / ONNX_NAME), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(onnx_path), _Reader(manifest.input_name, tensor),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=REDUCE_RANGE,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod, METHOD))
        prepared.unlink()
        canonical.rewrite(onnx_path)
        calibration = {"photos": len(sample_files()), "edits_per_photo": EDITS_PER_PHOTO,
                       "images": int(len(tensor)), "seed": SEED, "method": METHOD, "format": "QDQ",
                       "per_channel": True, "activations": "QUInt8", "weights": "QInt8",
                       "reduce_range": REDUCE_RANGE}
        int8 = replace(manifest, precision="int8", calibration=calibration, onnx_sha256=file_digest(onnx_path))
        int8.save(Path(tmp))
        median = median_cosine(fp32, Encoder(Path(tmp)))
        log.info("%s int8: median cosine to fp32 on the verification photos %.4f", manifest.name, median)
        if median < MIN_MEDIAN_COSINE:
            raise SystemExit(f"{manifest.name}: int8 vectors' median cosine to fp32 is {median:.4f} "
                             f"< {MIN_MEDIAN_COSINE}")
        int8 = replace(int8, versions={**int8.versions, "int8_median_cosine_to_fp32": round(median, 5)})
        int8.save(Path(tmp))
        if out.exists():
            shutil.rmtree(out)
        Path(tmp).rename(out)
    return int8


def median_cosine(fp32: Encoder, int8: Encoder, files: Sequence[Path] | None = None) -> float:
    """Median cosine between the two builds' vectors of these photos (default: the sample photos as they
    are, not edited): the build's check, and the benchmark's figure."""
    pixels = np.stack([resize(decode(read_raw(p), 10**9), fp32.resize_key) for p in files or sample_files()])
    return float(np.median(np.sum(fp32.encode(pixels) * int8.encode(pixels), axis=1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fp32", required=True, type=Path, help="the built fp32 model's directory")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest = quantize(args.fp32, args.out)
    log.info("%s: wrote %s (onnx sha256 %s)", manifest.name, args.out, manifest.onnx_sha256[:12])
    return 0


if __name__ == "__main__":
    sys.exit(main())
