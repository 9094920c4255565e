"""The search rules on vectors in memory (no Milvus, no models): fusion, RRF, alpha-QE and DBA give
exactly what the evaluation's brute-force rules give over full similarity rows."""
from __future__ import annotations

import numpy as np
import pytest

from searchcore.evaluation.evaluate import _similarity
from searchcore.retrieval.rerank import dba
from searchcore.similarity import l2_normalise
from searchcore.retrieval.fusion import FUSION_POOL, fused_order, rrf_order
from searchcore.retrieval.search import Query, search_many
from searchcore.storage.memory import InMemoryCollection

IMAGES, K = 3 * FUSION_POOL, 10  # more images than the fusion pool: candidates one model missed are scored


def vectors_of(seed: int, dim: int, labels: np.ndarray) -> np.ndarray:
    """Unit vectors of clustered images: one model's view (its own dimension and noise) of 6 classes."""
    rng = np.random.default_rng(seed)
    return l2_normalise(rng.normal(size=(6, dim))[labels] + 0.9 * rng.normal(size=(len(labels), dim)))


@pytest.fixture(scope="module")
def index() -> dict[str, np.ndarray]:
    labels = np.random.default_rng(0).integers(0, 6, IMAGES)
    return {"a": vectors_of(1, 16, labels), "b": vectors_of(2, 8, labels)}


def collections(vectors: dict[str, np.ndarray]) -> dict[str, InMemoryCollection]:
    ids = list(range(1, IMAGES + 1))
    return {m: InMemoryCollection(v, ids, [f"/img/{i}.jpg" for i in ids], [f"{i:064x}" for i in ids])
            for m, v in vectors.items()}


def queries(vectors: dict[str, np.ndarray], rows: range) -> list[Query]:
    return [Query(row + 1, f"/img/{row + 1}.jpg", {m: v[row] for m, v in vectors.items()}) for row in rows]


def shown(hits, query_id: int) -> list[int]:
    """The first K hits' rows, the query's own left out (the brute-force rules exclude it)."""
    return [h.id - 1 for h in hits if h.id != query_id][:K]


@pytest.mark.parametrize("expand", [False, True], ids=["plain", "alpha-qe"])
@pytest.mark.parametrize("augmented", [False, True], ids=["", "dba"])
def test_every_list_is_the_brute_force_ranking(index, expand, augmented):
    database = {m: dba(v) for m, v in index.items()} if augmented else index
    rows = range(0, IMAGES, 7)
    results = search_many(queries(index, rows), collections(database), K + 1, expand)
    for row, result in zip(rows, results):
        similarities = [_similarity(index[m][[row]], database[m], np.array([row]), expand) for m in index]
        for model, similarity in zip(index, similarities):
            assert shown(result.hits[model], row + 1) == list(np.argsort(-similarity[0], kind="stable")[:K])
        assert shown(result.fused, row + 1) == list(fused_order(similarities)[0][:K]), row
        assert shown(result.rrf, row + 1) == list(rrf_order(similarities)[0][:K]), row


def test_fused_cosines_are_the_mean_of_the_models_exact_cosines(index):
    """Also for a candidate one model did not return: it is scored exactly, not by its upper bound."""
    result = search_many(queries(index, range(3, 4)), collections(index), K)[0]
    for hit in result.fused:
        exact = {m: float(v[hit.id - 1] @ v[3]) for m, v in index.items()}
        assert hit.cosines == pytest.approx(exact, abs=1e-5)
        assert hit.cosine == pytest.approx(np.mean(list(exact.values())), abs=1e-5)
    assert any(None in hit.ranks.values() for hit in result.fused)  # some were found by one model only
