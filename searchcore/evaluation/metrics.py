"""Retrieval metrics over ranked relevance flags, one row per query (pure numpy, no models)."""
from __future__ import annotations

import numpy as np


def precision_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """P@k of each row: the share of relevant images among the first k."""
    return relevant[:, :k].mean(axis=1) if k else np.zeros(len(relevant))


def precision_curve(relevant: np.ndarray, depth: int) -> np.ndarray:
    """P@1 … P@depth of each row (queries x depth)."""
    depth = min(depth, relevant.shape[1])
    return np.cumsum(relevant[:, :depth], axis=1) / np.arange(1, depth + 1)


def hit_rate_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """R@k of each row as in deep metric learning: 1 when a relevant image is among the first k."""
    return relevant[:, :k].any(axis=1).astype(float)


def average_precision(relevant: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP of each row over its whole ranking, divided by its number of relevant images (not by the
    relevant images found); 0 for a row without relevant images."""
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_at_hits = np.where(relevant, np.cumsum(relevant, axis=1) / ranks, 0.0).sum(axis=1)
    return np.divide(precision_at_hits, n_relevant, out=np.zeros(len(relevant)), where=n_relevant > 0)


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard index of each pair of rows of ids (two top-k lists per query)."""
    return np.array([len(set(x) & set(y)) / len(set(x) | set(y)) if len(x) else 0.0 for x, y in zip(a, b)])


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95, chunk: int = 100) -> tuple[float, float]:
    """The `level` interval of mean(a - b), per-query scores of two methods on the same queries, from
    `resamples` draws of the queries with replacement (seeded: the same data give the same interval).
    Drawn in chunks, so 50,000 queries never need a resamples x queries array at once."""
    differences = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([differences[rng.integers(0, len(differences), (min(chunk, resamples - done),
                                                                          len(differences)))].mean(axis=1)
                            for done in range(0, resamples, chunk)])
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
