"""Retrieval metrics over one ranked list of relevance flags."""
from __future__ import annotations

import numpy as np


def precision_at(relevant: np.ndarray, k: int) -> float:
    return float(np.mean(relevant[:k])) if k else 0.0


def average_precision(relevant: np.ndarray, n_relevant: int) -> float:
    """AP over the whole ranking, divided by the number of relevant items (not by the hits found)."""
    if n_relevant == 0:
        return 0.0
    hits = np.flatnonzero(relevant)
    return float(np.sum(np.arange(1, len(hits) + 1) / (hits + 1)) / n_relevant)
