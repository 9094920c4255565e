"""Near-duplicate groups: images whose vectors lie within a threshold of each other, under one model (its
cosine) or fused (the mean cosine of the models). Each indexed image asks Milvus for its NEIGHBOURS
nearest, a batch of images per search, so the work and the memory grow with the index, never with its
square. Pairs at or above the threshold join their images' groups (connected components)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

from ..batching import batched
from ..storage.store import VectorStore

FUSED_SCORING = "fused"  # pairs scored by the mean of the models' cosines
NEIGHBOURS = 8  # nearest images asked per image; a larger group still joins through its members' pairs
BATCH = 256  # images per Milvus search
# The threshold per way of scoring that maximised F1 on planted copies among Corel photos
# (scripts/duplicates_bench.py; docs/benchmarks.md).
THRESHOLDS = {"resnet50": 0.87, "vgg16": 0.92, FUSED_SCORING: 0.88}

Pair = tuple[int, int]  # (smaller id, larger id)


@dataclass(frozen=True)
class Member:
    """One image of a group and its similarity to the group's first image (1.0 for the first)."""

    id: int
    path: str
    sha256: str
    similarity: float


@dataclass(frozen=True)
class Group:
    """Near-duplicate images, the first one first (the one most of the others were found near)."""

    members: list[Member]

    def to_json(self) -> dict:
        return {"size": len(self.members),
                "members": [{"id": m.id, "file": m.path, "sha256": m.sha256, "similarity": round(m.similarity, 4)}
                            for m in self.members]}


def scored_pairs(stores: Mapping[str, VectorStore], neighbours: int = NEIGHBOURS, batch: int = BATCH,
                 ) -> tuple[dict[Pair, float], dict[int, tuple[str, str]]]:
    """Every pair of an image and one of its nearest, with its score (the cosine, or the mean of the
    models' cosines), and the path and SHA-256 of each image in a pair."""
    first = next(iter(stores.values()))
    cosines: dict[str, dict[Pair, float]] = {m: {} for m in stores}
    rows: dict[int, tuple[str, str]] = {}
    for part in batched(first.all_ids(), batch):
        for name, vs in stores.items():
            stored = vs.rows(part, with_vectors=True)
            rows.update({i: (r["path"], r["sha256"]) for i, r in stored.items()})
            ids = list(stored)
            if not ids:
                continue
            vectors = np.asarray([stored[i]["vector"] for i in ids], np.float32)
            for i, hits in zip(ids, vs.search(vectors, neighbours + 1)):
                for hit in hits:
                    rows[hit.id] = (hit.path, hit.sha256)
                    if hit.id != i:
                        cosines[name][min(i, hit.id), max(i, hit.id)] = hit.cosine
    return _fused(cosines, stores), rows


def _fused(cosines: dict[str, dict[Pair, float]], stores: Mapping[str, VectorStore]) -> dict[Pair, float]:
    """One score per pair: the model's cosine, or with several models their mean, the cosines a model's
    search did not return computed from its stored vectors. A pair that some model has no vector of is
    left out: one model's cosine is not on the fused scale."""
    pairs = set().union(*cosines.values())
    for name, known in cosines.items():
        missing = [p for p in pairs if p not in known]
        for part in batched(missing, BATCH * NEIGHBOURS):
            vectors = stores[name].vectors({i for p in part for i in p})
            known.update({(a, b): float(vectors[a] @ vectors[b]) for a, b in part if a in vectors and b in vectors})
    return {p: float(np.mean([known[p] for known in cosines.values()])) for p in pairs
            if all(p in known for known in cosines.values())}


def components(pairs: Iterable[tuple[Hashable, Hashable]]) -> list[list]:
    """The connected components of a graph given by its edges (of images, by id or by path)."""
    parent: dict = {}

    def root(i: Hashable) -> Hashable:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict = {}
    for i in parent:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def groups_at(scores: Mapping[tuple[Hashable, Hashable], float], threshold: float) -> list[list]:
    """The groups of images joined by pairs scored at or above the threshold."""
    return components(p for p, score in scores.items() if score >= threshold)


def duplicate_groups(stores: Mapping[str, VectorStore], threshold: float, neighbours: int = NEIGHBOURS,
                     ) -> list[Group]:
    """The near-duplicate groups, largest first. A group's first image is the one with the most pairs in
    it (then the first path); each member says its score to that image."""
    scores, rows = scored_pairs(stores, neighbours)
    kept = {p: s for p, s in scores.items() if s >= threshold}
    degree: dict[int, int] = {}
    for a, b in kept:
        degree[a], degree[b] = degree.get(a, 0) + 1, degree.get(b, 0) + 1
    groups = []
    for ids in groups_at(kept, threshold):
        ids.sort(key=lambda i: (-degree[i], rows[i][0]))
        similarity = _to_first(stores, ids)
        groups.append(Group([Member(i, *rows[i], s) for i, s in zip(ids, similarity)]))
    return sorted(groups, key=lambda g: (-len(g.members), g.members[0].path))


def _to_first(stores: Mapping[str, VectorStore], ids: Sequence[int]) -> list[float]:
    """Each image's score to the first of `ids` (the mean cosine over the models; every member of a
    group has a vector in each model scored, or it would be in no pair)."""
    per_model = []
    for vs in stores.values():
        vectors = vs.vectors(ids)
        per_model.append([float(vectors[i] @ vectors[ids[0]]) for i in ids])
    return [float(np.mean(column)) for column in zip(*per_model)]
