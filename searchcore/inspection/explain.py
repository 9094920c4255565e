"""Why a hit matched: the spatial similarity of Stylianou, Souvenir and Pless ("Visualizing Deep
Similarity Networks", WACV 2019) for globally max-pooled features.

With max pooling, channel c of the unit vectors q and h contributes q_c * h_c to the cosine, and that
value comes from one place in each image: the arg-max of channel c in its feature map. Adding each
channel's contribution at its arg-max gives one heat grid per image; each grid sums to the cosine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from PIL import Image

from ..encoding.encoder import Encoder
from ..encoding.preprocess import resize
from ..similarity import l2_normalise


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
    return l2_normalise(vector), where


def spatial_similarity(query_map: np.ndarray, hit_map: np.ndarray) -> SpatialSimilarity:
    """Each image's heat grid: channel contributions q_c * h_c placed at that channel's arg-max."""
    q, q_where = pooled(query_map)
    h, h_where = pooled(hit_map)
    contribution = q * h
    query_heat = np.bincount(q_where, contribution, query_map[..., 0].size)
    hit_heat = np.bincount(h_where, contribution, hit_map[..., 0].size)
    return SpatialSimilarity(query_heat.reshape(query_map.shape[:2]), hit_heat.reshape(hit_map.shape[:2]),
                             float(contribution.sum()))


@dataclass(frozen=True)
class Explanation:
    """What one model saw of the query and the hit (its resized input pixels), the images' own sizes
    (width, height) and where they match."""

    query_pixels: np.ndarray
    hit_pixels: np.ndarray
    query_size: tuple[int, int]
    hit_size: tuple[int, int]
    similarity: SpatialSimilarity


def explain(encoders: Mapping[str, Encoder], query: Image.Image, hit: Image.Image) -> dict[str, Explanation]:
    """Per model, the heat grids over the query and the hit that make up their similarity."""
    explained = {}
    for name, encoder in encoders.items():
        pixels = np.stack([resize(image, encoder.resize_key) for image in (query, hit)])
        query_map, hit_map = encoder.feature_maps(encoder.preprocess(pixels))
        explained[name] = Explanation(pixels[0], pixels[1], query.size, hit.size,
                                      spatial_similarity(query_map, hit_map))
    return explained
