"""Indexing speed per model against raw ONNX Runtime and against one-session-per-image, same images, one run.

    python scripts/benchmark.py ../shared/datasets/corel1k [--images 96] [--rounds 3]

Rounds interleave the three ways so machine noise hits them alike; figures are medians.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchcore import MODEL_NAMES, Engine, Settings  # noqa: E402
from searchcore.decode import IMAGE_SUFFIXES, decode, read_raw  # noqa: E402
from searchcore.encoder import Encoder  # noqa: E402
from searchcore.manifest import ONNX_NAME  # noqa: E402
from searchcore.preprocess import resize, to_input  # noqa: E402


def pick(folder: Path, count: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(1, len(files) // count)
    return files[::step][:count]


def warm_up(encoder: Encoder, batch: int) -> None:
    """One untimed run, so that neither way pays ONNX Runtime's first-run allocations."""
    encoder.run(encoder.preprocess(np.zeros((batch, *encoder.manifest.preprocessing.size[::-1], 3), np.uint8)))


def raw_onnx(encoder: Encoder, files: list[Path], batch: int) -> float:
    """img/s of session.run alone on preprocessed tensors: the ceiling for this model."""
    prep = encoder.manifest.preprocessing
    tensors = [to_input(np.stack([resize(decode(read_raw(f), 10**9), encoder.resize_key)
                                  for f in files[i:i + batch]]), prep) for i in range(0, len(files), batch)]
    start = time.perf_counter()
    for t in tensors:
        encoder.run(t)
    return len(files) / (time.perf_counter() - start)


def indexing(settings: Settings, model: str, files: list[Path]) -> float:
    """img/s of a full index run: read, hash, decode, resize, infer, write to a fresh Milvus Lite."""
    with tempfile.TemporaryDirectory() as tmp:
        with Engine(replace(settings, milvus_uri=f"{tmp}/m.db", redis_url=""), models=[model]) as engine:
            warm_up(engine.models[model].encoder, settings.batch_size)
            start = time.perf_counter()
            report = engine.index(files)
            seconds = time.perf_counter() - start
    assert report.indexed == len(files), report.summary()
    return len(files) / seconds


def session_per_image(directory: Path, encoder: Encoder, files: list[Path]) -> float:
    """img/s the naive way: a new InferenceSession per image, one image at a time."""
    start = time.perf_counter()
    for f in files:
        session = ort.InferenceSession(str(directory / ONNX_NAME), providers=["CPUExecutionProvider"])
        x = to_input(resize(decode(read_raw(f), 10**9), encoder.resize_key)[None], encoder.manifest.preprocessing)
        session.run(None, {encoder.manifest.input_name: x})
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--naive-images", type=int, default=12, help="images for the session-per-image way")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    files = pick(args.folder, args.images)
    print(f"{len(files)} images from {args.folder}, batch {settings.batch_size}, {args.rounds} rounds, "
          f"onnxruntime {ort.__version__}")
    print(f"{'model':<10}{'raw ORT':>10}{'indexing':>10}{'ratio':>8}{'naive':>9}{'speed-up':>10}   (img/s, medians)")
    for model in MODEL_NAMES:
        directory = settings.model_dir / model
        encoder = Encoder(directory)
        warm_up(encoder, settings.batch_size)
        raw, index, naive = [], [], []
        for _ in range(args.rounds):
            raw.append(raw_onnx(encoder, files, settings.batch_size))
            index.append(indexing(settings, model, files))
            naive.append(session_per_image(directory, encoder, files[:args.naive_images]))
        r, i, n = (statistics.median(v) for v in (raw, index, naive))
        print(f"{model:<10}{r:>10.1f}{i:>10.1f}{i / r:>8.2f}{n:>9.2f}{i / n:>9.1f}x", flush=True)


if __name__ == "__main__":
    main()
