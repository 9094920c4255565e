"""Why a hit matched: the spatial similarity of Stylianou, Souvenir and Pless ("Visualizing Deep
Similarity Networks", WACV 2019) for globally max-pooled features.

With max pooling, channel c of the unit vectors q and h contributes q_c * h_c to the cosine, and that
value comes from one place in each image: the arg-max of channel c in its feature map. Adding each
channel's contribution at its arg-max gives one heat grid per image; each grid sums to the cosine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpatialSimilarity:
    query_heat: np.ndarray  # h x w of the query's feature map
    hit_heat: np.ndarray  # h x w of the hit's feature map
    cosine: float


def pooled(feature_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global max pooling of an h x w x C map: the unit vector, and each channel's arg-max cell."""
    flat = feature_map.reshape(-1, feature_map.shape[-1])
    where = flat.argmax(axis=0)
    vector = flat[where, np.arange(flat.shape[1])]
    return vector / max(float(np.linalg.norm(vector)), 1e-12), where


def spatial_similarity(query_map: np.ndarray, hit_map: np.ndarray) -> SpatialSimilarity:
    """Each image's heat grid: channel contributions q_c * h_c placed at that channel's arg-max."""
    q, q_where = pooled(query_map)
    h, h_where = pooled(hit_map)
    contribution = q * h
    query_heat = np.bincount(q_where, contribution, query_map[..., 0].size)
    hit_heat = np.bincount(h_where, contribution, hit_map[..., 0].size)
    return SpatialSimilarity(query_heat.reshape(query_map.shape[:2]), hit_heat.reshape(hit_map.shape[:2]),
                             float(contribution.sum()))
