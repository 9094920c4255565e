"""Each model's close-match level: the cosine that best separates photo pairs of one class from pairs of
two (the largest true-positive rate minus false-positive rate over every pair, Youden's J), on a
labelled folder. The app's "no close match" notice uses the levels in config.MODEL_SPECS.

    .venv/bin/python scripts/close_match.py [FOLDER]   (default ../shared/datasets/corel1k)"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from searchcore import Engine, Settings  # noqa: E402
from searchcore.evaluation.evaluate import EmbeddingsFile, embed_folder  # noqa: E402


def level(vectors: np.ndarray, labels: np.ndarray) -> dict:
    """The separating cosine and how well it separates, over every pair of distinct images."""
    similarity = vectors @ vectors.T
    pairs = ~np.eye(len(labels), dtype=bool)
    same = (labels[:, None] == labels[None, :]) & pairs
    other = labels[:, None] != labels[None, :]
    positives, negatives = np.sort(similarity[same]), np.sort(similarity[other])
    candidates = np.round(np.arange(0.30, 0.95, 0.005), 3)
    youden = [1 - np.searchsorted(positives, t) / len(positives) - (1 - np.searchsorted(negatives, t) / len(negatives))
              for t in candidates]
    best = int(np.argmax(youden))
    return {"level": float(candidates[best]), "youden_j": round(float(youden[best]), 3),
            "median_same_class": round(float(np.median(positives)), 3),
            "median_other_class": round(float(np.median(negatives)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT.parent / "shared" / "datasets" / "corel1k")
    args = parser.parse_args()
    settings = Settings.from_env()
    with Engine(settings) as engine:
        embeddings = embed_folder(args.folder.resolve(), engine.embedder, list(engine.models),
                                  EmbeddingsFile(settings.evaluations_dir))
    labels = np.asarray(embeddings.labels)
    print(json.dumps({m: level(v, labels) for m, v in embeddings.vectors.items()}, indent=1))


if __name__ == "__main__":
    main()
