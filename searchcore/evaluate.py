"""Evaluation on a labelled folder (one subfolder per class): every image queries all others,
itself excluded, by exact cosine similarity; P@k and mAP per model and fused."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .decode import IMAGE_SUFFIXES, Failure, read_many
from .embed import Embedder
from .metrics import average_precision, precision_at

FUSED = "fused"


@dataclass
class EvalReport:
    images: int
    classes: int
    scores: dict[str, dict[str, float]]
    failed: list[Failure] = field(default_factory=list)

    def table(self) -> str:
        columns = list(next(iter(self.scores.values())))
        lines = [f"{self.images} images, {self.classes} classes, {len(self.failed)} failed",
                 f"{'model':<10}" + "".join(f"{c:>8}" for c in columns)]
        lines += [f"{m:<10}" + "".join(f"{s[c]:>8.3f}" for c in columns) for m, s in self.scores.items()]
        return "\n".join(lines)


def labelled_images(root: Path) -> list[tuple[Path, str]]:
    return [(p, folder.name) for folder in sorted(root.iterdir()) if folder.is_dir()
            for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]


def rank_scores(similarity: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean P@k and mAP, each row a query over every other column."""
    totals = dict.fromkeys([f"P@{k}" for k in ks] + ["mAP"], 0.0)
    for i, row in enumerate(similarity):
        order = np.argsort(-row, kind="stable")
        order = order[order != i]
        relevant = labels[order] == labels[i]
        for k in ks:
            totals[f"P@{k}"] += precision_at(relevant, k)
        totals["mAP"] += average_precision(relevant, int(np.sum(labels == labels[i])) - 1)
    return {name: value / len(similarity) for name, value in totals.items()}


def evaluate(root: Path, embedder: Embedder, models: Sequence[str], ks: Sequence[int] = (1, 10, 20),
             batch_size: int = 32) -> EvalReport:
    files = labelled_images(root)
    failed: list[Failure] = []
    vectors: dict[str, list[np.ndarray]] = {m: [] for m in models}
    labels: list[str] = []
    label_of: dict[str, str] = {}
    wanted = frozenset(models)
    bar = tqdm(total=len(files), unit="img", desc="embedding", disable=None)

    def batches():
        for start in range(0, len(files), batch_size):
            chunk = dict(files[start:start + batch_size])
            batch = []
            for path, raw in read_many(chunk, failed):
                label_of[raw.source] = chunk[path]
                batch.append((raw, wanted))
            bar.update(len(chunk) - len(batch))
            yield batch

    for embedded in embedder.stream(batches()):
        for item in embedded:
            if item.error:
                failed.append(Failure.of(item.error))
                continue
            labels.append(label_of[item.raw.source])
            for m in models:
                vectors[m].append(item.vectors[m])
        bar.update(len(embedded))
    bar.close()
    label_array = np.asarray(labels)
    similarities = {m: np.stack(v) @ np.stack(v).T for m, v in vectors.items()}
    if len(models) > 1:
        similarities[FUSED] = np.mean(list(similarities.values()), axis=0)
    scores = {m: rank_scores(s, label_array, ks) for m, s in similarities.items()}
    return EvalReport(images=len(labels), classes=len(set(labels)), scores=scores, failed=failed)
