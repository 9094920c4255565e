"""Fused lists: one ranking from every model's. Here and in the evaluation alike: the union of each
model's top FUSION_POOL hits (more if k is larger), ranked by the mean cosine over the models (Fusion.MEAN;
a model that did not return a candidate scores it exactly from its stored vector or rows, asked only
for candidates that could be shown: the threshold algorithm), or by reciprocal rank fusion of the pools
(Fusion.RRF). `fused_lists` ranks search hits; `fused_order` and `rrf_order` are the same rules over
full similarity rows."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..similarity import best_cosines
from ..storage.store import Collection, Hit
from .lists import Fusion
from .rerank import top_k

FUSED, RRF = Fusion.MEAN, Fusion.RRF
FUSION_POOL = 50
RRF_K = 60  # reciprocal rank fusion: score = sum over models of 1 / (RRF_K + rank)


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



def fused_lists(pools: Sequence[Mapping[str, list[Hit]]], searched: Mapping[str, list[np.ndarray]],
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
