"""Database-side augmentation kept current in Milvus: each indexed image's DBA vector (rerank.dba's rule:
the weighted mean of its vector and its DBA_K nearest) in a model's DBA collection, computed again for
the images an index run or a removal touched. `store` is a model's image collection, `dba` its DBA one."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..batching import batched
from ..storage.store import VectorStore
from .rerank import DBA_K, weighted_mean


def neighbours(store: VectorStore, ids: Iterable[int], chunk: int = 64) -> set[int]:
    """The DBA_K nearest indexed images of each of these images (themselves included)."""
    found: set[int] = set()
    for part in batched(sorted(ids), chunk):
        stored = store.vectors(part)
        if stored:
            for hits in store.search(np.stack(list(stored.values())), DBA_K + 1):
                found.update(h.id for h in hits)
    return found


def augment(store: VectorStore, dba: VectorStore, ids: set[int], chunk: int = 64) -> set[int]:
    """The DBA vectors of these images, written. Returns their neighbours' ids (the images whose
    neighbourhoods these images may have entered)."""
    found: set[int] = set()
    for part in batched(sorted(ids), chunk):
        rows = store.rows(part, with_vectors=True)
        if not rows:
            continue
        own = np.stack([np.asarray(r["vector"], np.float32) for r in rows.values()])
        nearest = [[h for h in hits if h.id != i][:DBA_K] for i, hits in zip(rows, store.search(own, DBA_K + 1))]
        found.update(h.id for hits in nearest for h in hits)
        near = store.vectors({h.id for hits in nearest for h in hits})
        width = max(1, max(len(hits) for hits in nearest))
        stacked = np.zeros((len(rows), width, own.shape[1]), np.float32)
        cosines = np.zeros((len(rows), width), np.float32)
        for row, hits in enumerate(nearest):
            for col, h in enumerate(hits):
                if h.id in near:
                    stacked[row, col], cosines[row, col] = near[h.id], h.cosine
        augmented = weighted_mean(own, stacked, cosines)
        dba.upsert([{"id": i, "vector": v, "path": r["path"], "sha256": r["sha256"]}
                    for (i, r), v in zip(rows.items(), augmented)])
    return found


def with_neighbours(store: VectorStore, dba: VectorStore, ids: set[int]) -> int:
    """DBA vectors of these images, then of the neighbours their own searches found."""
    found = augment(store, dba, ids)
    augment(store, dba, found - ids)
    return len(ids | found)


def catch_up(store: VectorStore, dba: VectorStore, new_ids: set[int]) -> int:
    """After an index run: the new images and their neighbours, and any image the DBA collection lacks (a
    run killed before this step); rows of images no longer indexed go. Exact for the images recomputed;
    an older image that a new one entered the top DBA_K of, but which is not among the new one's own
    DBA_K nearest, keeps its old DBA vector until `rebuild`."""
    done = with_neighbours(store, dba, set(new_ids))
    if dba.count() != store.count():
        stored, augmented = set(store.all_ids()), set(dba.all_ids())
        dba.delete(sorted(augmented - stored))
        done += with_neighbours(store, dba, stored - augmented)
    return done


def rebuild(store: VectorStore, dba: VectorStore) -> int:
    """Every DBA vector computed anew from the current index (exact), then sealed as after an index run."""
    ids = set(store.all_ids())
    dba.delete(sorted(set(dba.all_ids()) - ids))
    augment(store, dba, ids)
    dba.flush()
    return len(ids)
