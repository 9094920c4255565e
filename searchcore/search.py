"""Query vectors -> each model's hits -> their agreement and a fused list.

Fused, here and in the evaluation alike: the union of each model's top FUSION_POOL hits (more if k is
larger), ranked by the mean cosine over the models; a model that did not return a candidate scores it
exactly from its stored vector. `fused_order` is the same rule over full similarity rows."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from .compare import Agreement, agreement
from .rerank import RRF_K, top_k
from .store import Hit, VectorStore

FUSED = "fused"
RRF = "rrf"
FUSION_POOL = 50


@dataclass(frozen=True)
class FusedHit:
    id: int
    path: str
    sha256: str
    cosine: float
    cosines: dict[str, float]
    ranks: dict[str, int | None]


@dataclass
class QueryResult:
    """Everything one query found; `id` is the query's content id (its own row, if indexed)."""

    query: str
    id: int
    hits: dict[str, list[Hit]]
    agreement: dict[str, Agreement] = field(default_factory=dict)
    fused: list[FusedHit] = field(default_factory=list)
    error: str | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def is_self(self, hit: Hit | FusedHit) -> bool:
        return hit.id == self.id

    def to_json(self) -> dict:
        """Plain JSON; a hit's path is under "file" (a "path" key makes Gradio's client download it)."""
        def hit_json(rank: int, hit: Hit | FusedHit) -> dict:
            fields = asdict(hit)
            return {"rank": rank, "id": fields.pop("id"), "file": fields.pop("path"), **fields,
                    "self": self.is_self(hit)}

        def hits_json(hits):
            return [hit_json(r, h) for r, h in enumerate(hits, 1)]
        return {"query": self.query, "id": self.id, "error": self.error,
                "hits": {m: hits_json(h) for m, h in self.hits.items()},
                "agreement": {pair: asdict(a) for pair, a in self.agreement.items()},
                "fused": hits_json(self.fused)}


def search(query_id: int, query: str, vectors: Mapping[str, np.ndarray], stores: Mapping[str, VectorStore],
           k: int) -> QueryResult:
    """One query's vector per model -> hits per model, pairwise agreement, fused list. With several
    models each is asked once for its pool of fusion candidates, and shows the first k of it."""
    depth = max(k, FUSION_POOL) if len(vectors) > 1 else k
    pools = {name: stores[name].search(vectors[name][None, :], depth)[0] for name in vectors}
    hits = {name: pool[:k] for name, pool in pools.items()}
    result = QueryResult(query=query, id=query_id, hits=hits, vectors=dict(vectors))
    for a, b in combinations(hits, 2):
        result.agreement[f"{a}~{b}"] = agreement([h.id for h in hits[a]], [h.id for h in hits[b]], k)
    if len(hits) > 1:
        result.fused = fuse(vectors, pools, stores, k)
    return result


def fused_order(similarities: Sequence[np.ndarray], pool: int = FUSION_POOL) -> np.ndarray:
    """The app's Fused ranking over full similarity rows (queries x images, one array per model): the
    union of each model's top `pool` first, by mean similarity, then every other image by the same mean.
    Each row's query must already be excluded (its similarity set to -inf in every model)."""
    mean = np.mean(similarities, axis=0)
    in_pool = np.zeros(mean.shape, bool)
    rows = np.arange(len(mean))[:, None]
    for similarity in similarities:
        top = np.argpartition(-similarity, min(pool, similarity.shape[1] - 1), axis=1)[:, :pool]
        in_pool[rows, top] = True
    key = np.where(in_pool, mean + 4.0, mean)  # cosines lie in [-1, 1]: the pool comes first
    return np.argsort(-key, axis=1, kind="stable")


def rrf_order(similarities: Sequence[np.ndarray], pool: int = FUSION_POOL) -> np.ndarray:
    """Reciprocal rank fusion over full similarity rows, as the app ranks it: an image scores
    sum(1 / (RRF_K + rank)) over the models whose top `pool` hold it; the union of the pools first,
    by that score, then every other image by mean similarity. Each query's own cell must be -inf."""
    mean = np.mean(similarities, axis=0)
    fused = np.zeros(mean.shape)
    rows = np.arange(len(mean))[:, None]
    for similarity in similarities:
        top = top_k(similarity, pool)
        fused[rows, top] += 1.0 / (RRF_K + np.arange(1, top.shape[1] + 1))
    key = np.where(fused > 0, fused + 4.0, mean)  # rrf scores < 1 and cosines in [-1, 1]: the pool first
    key[np.isneginf(mean)] = -np.inf
    return np.argsort(-key, axis=1, kind="stable")


def fuse(vectors: Mapping[str, np.ndarray], hits: Mapping[str, list[Hit]], stores: Mapping[str, VectorStore],
         k: int) -> list[FusedHit]:
    """Rank the union of all hits by the mean cosine over every model; a model that did not
    return a candidate still scores it exactly, from its stored vector."""
    candidates: dict[int, Hit] = {}
    cosines: dict[int, dict[str, float]] = {}
    ranks: dict[int, dict[str, int | None]] = {}
    for name, model_hits in hits.items():
        for rank, hit in enumerate(model_hits, 1):
            candidates.setdefault(hit.id, hit)
            cosines.setdefault(hit.id, {})[name] = hit.cosine
            ranks.setdefault(hit.id, {})[name] = rank
    for name in hits:
        missing = [i for i in candidates if name not in cosines[i]]
        for i, vector in stores[name].vectors(missing).items():
            cosines[i][name] = float(np.dot(vector, vectors[name]))
    fused = [FusedHit(id=i, path=h.path, sha256=h.sha256, cosine=float(np.mean(list(cosines[i].values()))),
                      cosines=cosines[i], ranks={m: ranks[i].get(m) for m in hits})
             for i, h in candidates.items() if len(cosines[i]) == len(hits)]
    return sorted(fused, key=lambda f: -f.cosine)[:k]
