"""A model's vectors in memory, searched exactly: a store.Collection without Milvus, so that the search
rules (fusion, RRF, alpha-QE, DBA) can be tested fast and against brute force."""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..retrieval.rerank import top_k
from .store import Hit, folder_start


class InMemoryCollection:
    """Unit vectors (n, d) with each row's id, path and sha256; exact cosine search."""

    def __init__(self, vectors: np.ndarray, ids: Sequence[int], paths: Sequence[str], sha256s: Sequence[str]) -> None:
        self.matrix = np.asarray(vectors, np.float32)
        self.ids, self.paths, self.sha256s = list(ids), list(paths), list(sha256s)
        self._row = {i: n for n, i in enumerate(self.ids)}

    def search(self, vectors: np.ndarray, k: int, under: str | None = None) -> list[list[Hit]]:
        similarity = np.asarray(vectors, np.float32) @ self.matrix.T
        if under is not None:
            start = folder_start(under)
            similarity[:, [not p.startswith(start) for p in self.paths]] = -np.inf
        return [[self._hit(n, float(row[n])) for n in nearest if row[n] > -np.inf]
                for row, nearest in zip(similarity, top_k(similarity, k))]

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        return {i: self.matrix[self._row[i]] for i in ids if i in self._row}

    def image_vectors(self, images: Mapping[int, str]) -> dict[int, np.ndarray]:
        return {i: v[None, :] for i, v in self.vectors(images).items()}

    def _hit(self, row: int, cosine: float) -> Hit:
        return Hit.from_cosine(self.ids[row], self.paths[row], self.sha256s[row], cosine)
