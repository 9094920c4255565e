"""Query vectors -> each model's hits (plain, or re-ranked) -> their agreement and the two fused lists
(fusion.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from ..similarity import best_cosines
from ..storage.store import Collection, Hit
from .compare import Agreement, agreement
from .fusion import FUSION_POOL, FusedHit, Fusion, fused_lists
from .lists import ListName, OnlyIn, rank_of
from .rerank import QE_N, weighted_mean


@dataclass
class QueryResult:
    """Everything one query found; `id` is the query's content id (its own row, if indexed)."""

    query: str
    id: int
    hits: dict[str, list[Hit]]
    agreement: dict[tuple[str, str], Agreement] = field(default_factory=dict)  # per pair of models
    fused: list[FusedHit] = field(default_factory=list)
    rrf: list[FusedHit] = field(default_factory=list)
    error: str | None = None
    rerank: str = "none"
    vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # searched with: (d,) or (variants, d)
    robust: bool = False
    regions: bool = False  # searched the indexed images' regions
    turns_indexed: bool = False  # robust, by the indexed images' turns (else by the query's own turns)

    def is_self(self, hit: Hit | FusedHit) -> bool:
        return hit.id == self.id

    def ranked(self, name: ListName) -> list[tuple[int, Hit | FusedHit]]:
        """(rank, hit) of one list; the hits only one model found keep their ranks in its own list."""
        if isinstance(name, Fusion):
            return list(enumerate(self.fused if name is Fusion.MEAN else self.rrf, 1))
        model = name.model if isinstance(name, OnlyIn) else name
        own = list(enumerate(self.hits.get(model, []), 1))
        if not isinstance(name, OnlyIn):
            return own
        others = {h.id for m, hits in self.hits.items() if m != model for h in hits}
        return [(rank, h) for rank, h in own if h.id not in others]

    def lists(self) -> dict[str | Fusion, list[Hit | FusedHit]]:
        """Every list of the result: each model's, then the fused ones (empty with one model)."""
        return {**self.hits, Fusion.MEAN: self.fused, Fusion.RRF: self.rrf}

    def to_json(self) -> dict:
        """Plain JSON; a hit's path is under "file" (a "path" key makes Gradio's client download it)."""
        def hit_json(rank: int, hit: Hit | FusedHit) -> dict:
            fields = asdict(hit)
            return {"rank": rank, "id": fields.pop("id"), "file": fields.pop("path"), **fields,
                    "self": self.is_self(hit)}

        def hits_json(hits):
            return [hit_json(r, h) for r, h in enumerate(hits, 1)]
        return {"query": self.query, "id": self.id, "error": self.error, "rerank": self.rerank, "robust": self.robust,
                "regions": self.regions,
                "hits": {m: hits_json(h) for m, h in self.hits.items()},
                "agreement": {"~".join(pair): asdict(a) for pair, a in self.agreement.items()},
                "fused": hits_json(self.fused), "rrf": hits_json(self.rrf)}


@dataclass(frozen=True)
class Query:
    """One query to search with: its content id, what to call it, and its vector per model, (d,), or
    (variants, d) for the robust option (each image keeps its best cosine to any row)."""

    id: int
    source: str
    vectors: Mapping[str, np.ndarray]


def search(query_id: int, query: str, vectors: Mapping[str, np.ndarray], stores: Mapping[str, Collection],
           k: int, expand: bool = False, rerank: str = "none") -> QueryResult:
    """One query: see search_many."""
    return search_many([Query(query_id, query, vectors)], stores, k, expand, rerank)[0]


def search_many(queries: Sequence[Query], stores: Mapping[str, Collection], k: int, expand: bool = False,
                rerank: str = "none") -> list[QueryResult]:
    """Queries (all with the same models) -> per query its hits per model, their pairwise agreement and
    the fused lists. Each model's collection is searched once for all queries (twice with alpha-QE),
    then asked for the few candidates another model found that could be shown: with several models,
    for each query's pool of FUSION_POOL fusion candidates, of which the first k are shown. `stores`
    are the collections to search (the DBA ones for DBA); `expand`: alpha-QE."""
    if not queries:
        return []
    models = list(queries[0].vectors)
    depth = max(k, FUSION_POOL) if len(models) > 1 else k
    ids = [q.id for q in queries]
    pools, searched = {}, {}
    for name in models:
        pools[name], searched[name] = pool_search(stores[name], [q.vectors[name] for q in queries], depth,
                                                  expand, ids)
    per_query = [{m: pools[m][n] for m in models} for n in range(len(queries))]
    fused = fused_lists(per_query, searched, stores, ids, k) if len(models) > 1 else [([], []) for _ in queries]
    return [_result(q, per_query[n], {m: searched[m][n] for m in models}, fused[n], k, rerank)
            for n, q in enumerate(queries)]


def _result(query: Query, pools: dict[str, list[Hit]], searched: dict[str, np.ndarray],
            fused: tuple[list[FusedHit], list[FusedHit]], k: int, rerank: str) -> QueryResult:
    hits = {name: pool[:k] for name, pool in pools.items()}
    result = QueryResult(query=query.source, id=query.id, hits=hits, vectors=searched, rerank=rerank)
    for a, b in combinations(hits, 2):
        result.agreement[a, b] = agreement([h.id for h in hits[a]], [h.id for h in hits[b]], k)
    result.fused, result.rrf = fused
    return result



def pool_search(store: Collection, vectors: Sequence[np.ndarray], depth: int, expand: bool,
                query_ids: Sequence[int]) -> tuple[list[list[Hit]], list[np.ndarray]]:
    """Per query: its own row first (if it is indexed), then the first `depth` other hits, and the vector
    that found them: the query's own, or with `expand` its alpha-QE expansion by its first QE_N others.
    Counting others only, the pools are those of the evaluation, where a query never finds itself.
    One search for all queries' rows (variants included), and with `expand` one fetch and one more search."""
    rows = [np.atleast_2d(v) for v in vectors]
    found = iter(store.search(np.concatenate(rows), depth + 1))
    pools = [_own_first(best_of([next(found) for _ in range(len(r))]), i, depth) for r, i in zip(rows, query_ids)]
    if not expand:
        return pools, list(vectors)
    near = [[h for h in pool if h.id != i][:QE_N] for pool, i in zip(pools, query_ids)]
    stored = store.vectors({h.id for hits in near for h in hits})
    near = [[h for h in hits if h.id in stored] for hits in near]
    expanded = [weighted_mean(r[:1], np.stack([stored[h.id] for h in hits])[None],
                              np.array([[h.cosine for h in hits]]))[0] if hits else v
                for r, v, hits in zip(rows, vectors, near)]
    which = [n for n, hits in enumerate(near) if hits]
    if which:
        again = store.search(np.stack([expanded[n] for n in which]), depth + 1)
        for n, hits in zip(which, again):
            pools[n] = _own_first(hits, query_ids[n], depth)
    return pools, expanded


def best_of(lists: list[list[Hit]]) -> list[Hit]:
    """Hits of several query variants merged: each image once, with its best cosine, best first."""
    best: dict[int, Hit] = {}
    for hits in lists:
        for hit in hits:
            if hit.id not in best or hit.cosine > best[hit.id].cosine:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: -h.cosine)


def _own_first(hits: list[Hit], query_id: int, depth: int) -> list[Hit]:
    return [h for h in hits if h.id == query_id] + [h for h in hits if h.id != query_id][:depth]



@dataclass(frozen=True)
class HitScore:
    """A hit under one model: its rank in that model's list (None: not in it) and its exact cosine to
    the query (None: that model has no vector of it)."""

    rank: int | None
    cosine: float | None


def hit_scores(result: QueryResult, hit: Hit | FusedHit, searched: Mapping[str, Collection]) -> dict[str, HitScore]:
    """One hit under every model of a result: its rank in that model's list and its exact cosine to the
    query, from the stored vector(s) in the collection that model searched (also when its list lacks it)."""
    scores = {}
    for name, query_vector in result.vectors.items():
        cosine = best_cosines(searched[name].image_vectors({hit.id: hit.sha256}), query_vector).get(hit.id)
        scores[name] = HitScore(rank_of([h.id for h in result.hits.get(name, [])], hit.id), cosine)
    return scores
