"""Indexing speed per model and precision against raw ONNX Runtime and against one-session-per-image,
same images, one run; and how close the int8 vectors stay to fp32.

    python scripts/benchmark.py ../shared/datasets/corel1k [--images 96] [--rounds 3]

Rounds interleave every way and precision so machine noise hits them alike; figures are medians.
`indexing` is img/s until `Engine.index` returns (every image written and searchable); `+ DBA` until
its upkeep (the DBA vectors, the sealing) is done too. Each `ratio` is that over raw ORT; `int8 speed-up` is the int8 row's indexing (and raw ORT) img/s over
the fp32 row's; `cosine` is the median cosine between the int8 and fp32 vectors of the same images.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.quantize import median_cosine  # noqa: E402
from searchcore import MODEL_NAMES, Engine, Settings  # noqa: E402
from searchcore.config import PRECISIONS, model_path  # noqa: E402
from searchcore.encoding.encoder import Encoder  # noqa: E402
from searchcore.encoding.manifest import ONNX_NAME  # noqa: E402
from searchcore.encoding.preprocess import resize, to_input  # noqa: E402
from searchcore.files.decode import IMAGE_SUFFIXES, decode, read_raw  # noqa: E402
from searchcore.timing import StageTimes  # noqa: E402


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


@dataclass
class IndexRun:
    searchable: float  # img/s until index() returned: every image written and searchable
    settled: float  # img/s until its upkeep was done too: DBA vectors current, collections sealed
    stages: StageTimes


def indexing(settings: Settings, model: str, files: list[Path]) -> IndexRun:
    """A full index run: read, hash, decode, resize, infer, write to a fresh Milvus Lite (and the
    thumbnails, in a fresh home), timed until it returns and until its DBA upkeep is done."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(settings, home=Path(tmp))
        with Engine(replace(settings, milvus_uri=f"{tmp}/m.db", redis_url=""), models=[model]) as engine:
            warm_up(engine.models[model].encoder, settings.batch_size)
            start = time.perf_counter()
            report = engine.index(files)
            searchable = time.perf_counter() - start
            engine.settle()
            settled = time.perf_counter() - start
    assert report.indexed == len(files), report.summary()
    return IndexRun(len(files) / searchable, len(files) / settled, report.stages)


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
    print(f"{'model':<10}{'precision':>10}{'raw ORT':>9}{'indexing':>10}{'ratio':>7}{'+ DBA':>7}{'ratio':>7}"
          f"{'naive':>8}{'speed-up':>10}{'int8 speed-up':>15}{'cosine':>8}")
    print("  (img/s, medians; indexing: until every image is searchable; + DBA: until the DBA upkeep is done "
          "too; int8 speed-up: indexing, raw ORT; stages: the median run's)")
    for model in MODEL_NAMES:
        built = {p: model_path(settings.model_dir, model, p) for p in PRECISIONS}
        encoders = {p: Encoder(d) for p, d in built.items()}
        for encoder in encoders.values():
            warm_up(encoder, settings.batch_size)
        figures: dict[str, dict[str, list[float]]] = {p: {"raw": [], "naive": []} for p in PRECISIONS}
        runs: dict[str, list[IndexRun]] = {p: [] for p in PRECISIONS}
        for _ in range(args.rounds):
            for precision, encoder in encoders.items():
                figures[precision]["raw"].append(raw_onnx(encoder, files, settings.batch_size))
                runs[precision].append(indexing(replace(settings, precision=precision), model, files))
                figures[precision]["naive"].append(session_per_image(built[precision], encoder,
                                                                     files[:args.naive_images]))
        medians = {p: {way: statistics.median(v) for way, v in f.items()} for p, f in figures.items()}
        median_runs = {p: sorted(r, key=lambda run: run.searchable)[len(r) // 2] for p, r in runs.items()}
        cosine = median_cosine(encoders["fp32"], encoders["int8"], files)
        for precision, m in medians.items():
            r, n, run = m["raw"], m["naive"], median_runs[precision]
            i, settled = run.searchable, statistics.median(x.settled for x in runs[precision])
            versus = "" if precision == "fp32" else \
                f"{i / median_runs['fp32'].searchable:.2f}x, {r / medians['fp32']['raw']:.2f}x"
            print(f"{model:<10}{precision:>10}{r:>9.1f}{i:>10.1f}{i / r:>7.2f}{settled:>7.1f}{settled / r:>7.2f}"
                  f"{n:>8.2f}{i / n:>9.1f}x{versus:>15}{'' if precision == 'fp32' else f'{cosine:.4f}':>8}")
            print(f"{'':<20}stages: {run.stages.text()}", flush=True)


if __name__ == "__main__":
    main()
