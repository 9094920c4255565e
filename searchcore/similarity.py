"""Cosine similarity and L2 distance of unit vectors: one is a function of the other."""
from __future__ import annotations

import math


def l2_from_cosine(cosine: float) -> float:
    """The L2 distance of two unit vectors with this cosine similarity."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(cosine)))


def cosine_from_squared_l2(squared: float) -> float:
    """The cosine similarity of two unit vectors at this squared L2 distance (Milvus' L2 metric)."""
    return 1.0 - max(float(squared), 0.0) / 2.0
