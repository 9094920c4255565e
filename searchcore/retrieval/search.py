"""Query vectors -> each model's hits (plain, or re-ranked) -> their agreement and two fused lists.

Fused, here and in the evaluation alike: the union of each model's top FUSION_POOL hits (more if k is
larger), ranked by the mean cosine over the models (a model that did not return a candidate scores it
exactly from its stored vector or rows, asked only for candidates that could be shown), or by
reciprocal rank fusion of the pools (RRF). `fused_order` and `rrf_order` are the same rules over full
similarity rows."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from ..storage.store import Collection, Hit
from .compare import Agreement, agreement
from .rerank import QE_N, RRF_K, top_k, weighted_mean
from .similarity import best_cosines

FUSED = "fused"
RRF = "rrf"
FUSION_POOL = 50


@dataclass(frozen=True)
class FusedHit:
    """A candidate of the fused lists: its mean cosine over the models, each model's cosine, and its
    rank in each model's pool (None: not in it)."""

    id: int
    path: str
    sha256: str
    cosine: float
    cosines: dict[str, float]
    ranks: dict[str, int | None]
    other_ranks: dict[str, int | None] = field(default_factory=dict, repr=False)  # the query's own row not counted


@dataclass
class QueryResult:
    """Everything one query found; `id` is the query's content id (its own row, if indexed)."""

    query: str
    id: int
    hits: dict[str, list[Hit]]
    agreement: dict[str, Agreement] = field(default_factory=dict)
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
                "agreement": {pair: asdict(a) for pair, a in self.agreement.items()},
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
    fused = _fused_lists(per_query, searched, stores, ids, k) if len(models) > 1 else [([], []) for _ in queries]
    return [_result(q, per_query[n], {m: searched[m][n] for m in models}, fused[n], k, rerank)
            for n, q in enumerate(queries)]


def _result(query: Query, pools: dict[str, list[Hit]], searched: dict[str, np.ndarray],
            fused: tuple[list[FusedHit], list[FusedHit]], k: int, rerank: str) -> QueryResult:
    hits = {name: pool[:k] for name, pool in pools.items()}
    result = QueryResult(query=query.source, id=query.id, hits=hits, vectors=searched, rerank=rerank)
    for a, b in combinations(hits, 2):
        result.agreement[f"{a}~{b}"] = agreement([h.id for h in hits[a]], [h.id for h in hits[b]], k)
    result.fused, result.rrf = fused
    return result


def _fused_lists(pools: Sequence[Mapping[str, list[Hit]]], searched: Mapping[str, list[np.ndarray]],
                 stores: Mapping[str, Collection], query_ids: Sequence[int], k: int,
                 ) -> list[tuple[list[FusedHit], list[FusedHit]]]:
    """Per query, the first k of the union of its models' pools by mean cosine, and by RRF. A model
    that did not return a candidate scores it exactly from its collection, but only once the candidate
    would be shown: until then the candidate counts with the lowest cosine of that model's pool, an
    upper bound (the threshold algorithm: the lists come out as if every candidate had been scored,
    and a region collection, where scoring costs a fetch of 30 rows per image, is asked for few).
    Each round asks each model's collection once for all queries."""
    models = list(searched)
    exact: list[dict[str, dict[int, float | None]]] = [{m: {} for m in models} for _ in pools]
    while True:
        shown, wanted = [], {m: [{} for _ in pools] for m in models}
        for n, pool in enumerate(pools):
            candidates, bounded = fuse(pool, exact[n], query_ids[n])
            lists = sorted(candidates, key=lambda f: -f.cosine)[:k], rrf_ranking(candidates, query_ids[n])[:k]
            shown.append(lists)
            for hit in lists[0] + lists[1]:
                for name in bounded.get(hit.id, ()):
                    wanted[name][n][hit.id] = hit.sha256
        if not any(any(per_query) for per_query in wanted.values()):
            return shown
        for name, per_query in wanted.items():
            if any(per_query):
                stored = stores[name].image_vectors({i: sha for one in per_query for i, sha in one.items()})
                for n, one in enumerate(per_query):
                    found = best_cosines({i: stored[i] for i in one if i in stored}, searched[name][n])
                    exact[n][name] |= {i: found.get(i) for i in one}


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


def rrf_ranking(candidates: list[FusedHit], query_id: int) -> list[FusedHit]:
    """The candidates by reciprocal rank fusion of the models' pools, ranks counted over the other
    images (as in the evaluation); the query's own row, if indexed, first; ties by mean cosine."""
    def key(hit: FusedHit) -> tuple[float, float]:
        if hit.id == query_id:
            return (-np.inf, -hit.cosine)
        return (-sum(1.0 / (RRF_K + rank) for rank in hit.other_ranks.values() if rank), -hit.cosine)
    return sorted(candidates, key=key)


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
    return np.lexsort((-mean, -key), axis=1)  # ties (the same ranks, swapped) by mean cosine


def fuse(hits: Mapping[str, list[Hit]], exact: Mapping[str, Mapping[int, float | None]], query_id: int,
         ) -> tuple[list[FusedHit], dict[int, list[str]]]:
    """The union of all hits, each with its cosine under every model and its rank in each model's list.
    A model that did not return a candidate scores it by `exact` (its cosine in that model's collection;
    None: not there, and the candidate is left out) or, not known yet, by the lowest cosine of that
    model's list, an upper bound; the second value names, per candidate, the models that did so."""
    candidates: dict[int, Hit] = {}
    cosines: dict[int, dict[str, float]] = {}
    ranks: dict[int, dict[str, int | None]] = {}
    others: dict[int, dict[str, int]] = {}
    for name, model_hits in hits.items():
        for rank, hit in enumerate(model_hits, 1):
            candidates.setdefault(hit.id, hit)
            cosines.setdefault(hit.id, {})[name] = hit.cosine
            ranks.setdefault(hit.id, {})[name] = rank
        for rank, hit in enumerate((h for h in model_hits if h.id != query_id), 1):
            others.setdefault(hit.id, {})[name] = rank
    bounded: dict[int, list[str]] = {}
    for name, model_hits in hits.items():
        lowest = min((h.cosine for h in model_hits), default=1.0)
        for i in candidates:
            if name in cosines[i]:
                continue
            if i in exact[name]:
                if exact[name][i] is not None:
                    cosines[i][name] = exact[name][i]
            else:
                cosines[i][name] = lowest
                bounded.setdefault(i, []).append(name)
    fused = [FusedHit(id=i, path=h.path, sha256=h.sha256, cosine=float(np.mean(list(cosines[i].values()))),
                      cosines=cosines[i], ranks={m: ranks[i].get(m) for m in hits},
                      other_ranks={m: others.get(i, {}).get(m) for m in hits})
             for i, h in candidates.items() if len(cosines[i]) == len(hits)]
    return fused, bounded
