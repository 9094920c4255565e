"""Re-ranking with the same models: database-side augmentation (DBA) and alpha-weighted query expansion
(alpha-QE), after Radenovic, Tolias and Chum, "Fine-tuning CNN Image Retrieval with No Human
Annotation", TPAMI 2018. Reciprocal rank fusion is in fusion.py, next to the mean-cosine one.

Pure numpy: the engine feeds these from Milvus, the evaluation from its vectors in memory.
"""
from __future__ import annotations

import numpy as np

from ..batching import spans
from ..similarity import l2_normalise
from .options import Rerank

RERANKS = tuple(r.value for r in Rerank)  # the choices, as the CLI and the app name them
DBA_K = 5  # each image's vector becomes the weighted mean of itself and its 5 nearest neighbours
QE_N = 5  # a query is expanded with its 5 first hits
ALPHA = 3.0  # weights: cosine ** alpha (negative cosines weigh nothing)


def weighted_mean(own: np.ndarray, neighbours: np.ndarray, cosines: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Unit vectors of own + sum(max(cos, 0) ** alpha * neighbour), row by row: own is (n, d),
    neighbours (n, m, d), cosines (n, m). The one formula of DBA and alpha-QE."""
    weights = np.clip(cosines, 0.0, None) ** alpha
    return l2_normalise(own + np.einsum("nm,nmd->nd", weights, neighbours))


def dba(vectors: np.ndarray, k: int = DBA_K, alpha: float = ALPHA, chunk: int = 1024) -> np.ndarray:
    """Every vector replaced by the weighted mean of itself and its k nearest others, in chunks."""
    out = np.empty_like(vectors)
    for part in spans(len(vectors), chunk):
        rows = np.arange(len(vectors))[part]
        similarity = vectors[rows] @ vectors.T
        similarity[np.arange(len(rows)), rows] = -np.inf
        nearest = top_k(similarity, k)
        out[rows] = weighted_mean(vectors[rows], vectors[nearest], np.take_along_axis(similarity, nearest, 1), alpha)
    return out


def top_k(similarity: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's k largest values, best first."""
    k = min(k, similarity.shape[1])
    part = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)
