"""The vector rules every layer shares: unit length (L2 normalisation); cosine similarity and L2 distance
of unit vectors, one a function of the other; the best cosine between an image's rows and a query's."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Each vector along the last axis scaled to unit length (a zero vector stays zero), as float32."""
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def l2_from_cosine(cosine: float) -> float:
    """The L2 distance of two unit vectors with this cosine similarity."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(cosine)))


def cosine_from_squared_l2(squared: float) -> float:
    """The cosine similarity of two unit vectors at this squared L2 distance (Milvus' L2 metric)."""
    return 1.0 - max(float(squared), 0.0) / 2.0


def best_cosines(image_vectors: Mapping[int, np.ndarray], queries: np.ndarray) -> dict[int, float]:
    """Each image's best cosine between any of its rows (its vector, or its regions) and any query row
    (the query, or its variants). All rows unit length."""
    queries = np.atleast_2d(queries)
    return {i: float(np.max(queries @ rows.T)) for i, rows in image_vectors.items()}
