"""Regional descriptors: several vectors per indexed image, each the max-pooled, L2-normalised feature
map over one square window of the model's last conv grid (7 x 7 here). A crop of a photo looks like a
region of it, so a crop's plain vector is searched against these and each image keeps its best region.

Regions lift the recall of small crops (docs/benchmarks.md) but cost a row per window and image, so
they are an option (SEARCHCORE_REGIONS=1) that takes effect for images indexed while it is on. R-MAC
sums of the same regions gained less, so they are not offered.

GroupedSearch searches any collection of several rows per image like an image collection: the regions,
or the turned copies of SEARCHCORE_TURNS (embed.TURNS).
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np

from ..files.decode import content_id
from ..similarity import l2_normalise
from .store import Hit, VectorStore

REGION_SIZES = (7, 6, 5, 4)
OVERFETCH = 4  # region hits asked for per image wanted: most images place several regions near the top


def window_sizes(grid: tuple[int, int], sizes: tuple[int, ...] = REGION_SIZES) -> list[int]:
    """The window sizes used on an h x w grid: each size clipped to the grid, once, largest first."""
    return sorted({min(s, *grid) for s in sizes}, reverse=True)


def regions_per_image(grid: tuple[int, int], sizes: tuple[int, ...] = REGION_SIZES) -> int:
    """How many regional vectors region_vectors makes of an h x w feature map (30 on a 7 x 7 grid)."""
    h, w = grid
    return sum((h - size + 1) * (w - size + 1) for size in window_sizes(grid, sizes))


def region_vectors(feature_map: np.ndarray, sizes: tuple[int, ...] = REGION_SIZES) -> np.ndarray:
    """(regions, channels) unit vectors of one h x w x C feature map: every square window of each size
    (clipped to the grid) at stride 1, max-pooled."""
    h, w, _ = feature_map.shape
    windows = []
    for size in window_sizes((h, w), sizes):
        for top in range(h - size + 1):
            for left in range(w - size + 1):
                windows.append(feature_map[top:top + size, left:left + size].max(axis=(0, 1)))
    return l2_normalise(np.stack(windows))


def row_id(sha256: str, row: int) -> int:
    """The id of an image's n-th row (region or turn): from the image's SHA-256 and the row's number."""
    return content_id(hashlib.sha256(f"{sha256}:{row}".encode()).hexdigest())


class GroupedSearch:
    """A model's collection of several rows per image (regions, or turns), searched like an image
    collection: hits are images (grouped by SHA-256, each with its best row's cosine), so search.py's
    pools, fusion and ranks apply."""

    def __init__(self, rows: VectorStore, rows_per_image: int) -> None:
        self.rows, self.rows_per_image = rows, rows_per_image

    def search(self, vectors: np.ndarray, k: int, under: str | None = None) -> list[list[Hit]]:
        """Up to k images per query row (fewer when one image's rows fill the row hits)."""
        found = self.rows.search(vectors, min(16384, k * OVERFETCH), under)
        return [self._images(hits)[:k] for hits in found]

    def image_vectors(self, images: Mapping[int, str]) -> dict[int, np.ndarray]:
        """Each image's (id -> sha256) rows that are here, as a (rows, dim) array, fetched by their ids."""
        ids = {i: [row_id(sha, n) for n in range(self.rows_per_image)] for i, sha in images.items()}
        stored = self.rows.vectors([r for rows in ids.values() for r in rows])
        return {i: np.stack([stored[r] for r in rows if r in stored]) for i, rows in ids.items()
                if any(r in stored for r in rows)}

    @staticmethod
    def _images(hits: list[Hit]) -> list[Hit]:
        best: dict[str, Hit] = {}
        for hit in hits:  # best first already: the first region of an image is its best
            best.setdefault(hit.sha256, Hit(content_id(hit.sha256), hit.path, hit.sha256, hit.l2, hit.cosine))
        return list(best.values())
