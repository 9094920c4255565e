"""Each model's indexed vectors in 2-D (scikit-learn's PCA or t-SNE), to see how it groups the images.

Capped at MAX_POINTS: above that a seeded random sample, the same for every model, so that a point on
one map is the same image as on the other. Maps are cached per model build and index state.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..storage.store import VectorStore

MAX_POINTS = 2000
METHODS = ("PCA", "t-SNE")


@dataclass(frozen=True)
class MapPoints:
    """One model's map: per image its id, path, sha256, group (its class: class_groups) and 2-D position."""

    model: str
    method: str
    ids: list[int]
    paths: list[str]
    sha256s: list[str]
    groups: list[str]
    xy: np.ndarray
    total: int  # images indexed; more than len(ids) when sampled

    def only(self, keep: Callable[[str], bool]) -> "MapPoints":
        """The points whose path `keep` accepts (the page shows only images under its roots)."""
        kept = [n for n, path in enumerate(self.paths) if keep(path)]
        return MapPoints(self.model, self.method, [self.ids[n] for n in kept], [self.paths[n] for n in kept],
                         [self.sha256s[n] for n in kept], [self.groups[n] for n in kept],
                         np.asarray(self.xy).reshape(-1, 2)[kept], self.total)


def sample_ids(ids: Sequence[int], cap: int = MAX_POINTS, seed: int = 0) -> list[int]:
    ids = sorted(ids)
    return ids if len(ids) <= cap else sorted(random.Random(seed).sample(ids, cap))


def index_state(model_sha256: str, ids: Sequence[int], method: str) -> str:
    """A key that changes when the model build, the indexed images or the method change."""
    digest = hashlib.sha256(f"{model_sha256}\0{method}\0".encode())
    digest.update(np.asarray(sorted(ids), np.int64).tobytes())
    return digest.hexdigest()


def project(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """N x D unit vectors to N x 2."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if len(vectors) < 3:
        return np.zeros((len(vectors), 2))
    from sklearn.decomposition import PCA  # here, not at import: the CLI's other commands start faster
    from sklearn.manifold import TSNE
    if method == "PCA":
        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    reduced = PCA(n_components=min(50, len(vectors) - 1, vectors.shape[1]), random_state=seed).fit_transform(vectors)
    perplexity = min(30.0, (len(vectors) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def class_groups(paths: Sequence[str], uploads: Path | None = None) -> list[str]:
    """Each image's class: the name of its own folder (a labelled set's class folder), with its parent's
    name before it where folders of one name sit in different places; every upload is one group.
    Unlike the first folder of the paths, this keeps the classes when a second folder is indexed."""
    folders = [Path(p).parent for p in paths]
    places: dict[str, set[Path]] = {}
    for folder in set(folders):
        places.setdefault(folder.name, set()).add(folder)

    def name(folder: Path) -> str:
        if uploads and folder.is_relative_to(uploads):
            return "uploads"
        return folder.name if len(places[folder.name]) == 1 else f"{folder.parent.name}/{folder.name}"
    return [name(folder) for folder in folders]


class MapCache:
    """The last map of each model and method, drawn again only when the build or the indexed images
    change (one map each is kept: older states are let go)."""

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], tuple[str, MapPoints]] = {}

    def points(self, model: str, rows: VectorStore, build_sha256: str, method: str,
               uploads: Path | None = None) -> MapPoints:
        """The model's indexed vectors in 2-D (a seeded sample of at most MAX_POINTS), grouped by class."""
        ids = rows.all_ids()
        state = index_state(build_sha256, ids, method)
        kept = self._maps.get((model, method))
        if kept is None or kept[0] != state:
            sample = sample_ids(ids)
            found = rows.rows(sample, with_vectors=True)
            sample = [i for i in sample if i in found]  # removed meanwhile
            vectors = np.asarray([found[i]["vector"] for i in sample], np.float32).reshape(-1, rows.dim)
            paths = [found[i]["path"] for i in sample]
            points = MapPoints(model, method, sample, paths, [found[i]["sha256"] for i in sample],
                               class_groups(paths, uploads), project(vectors, method), len(ids))
            self._maps[model, method] = kept = (state, points)
        return kept[1]
