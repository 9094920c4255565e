"""Agreement between result lists, and the retrieval metrics and scoring, on hand-worked examples."""
from __future__ import annotations

import numpy as np
import pytest

from searchcore.evaluation.evaluate import score
from searchcore.evaluation.metrics import average_precision, hit_rate_at, paired_bootstrap, precision_at, precision_curve
from searchcore.retrieval.compare import agreement, kendall_tau
from searchcore.retrieval.fusion import fused_order


def test_agreement_of_two_lists():
    a = agreement([1, 2, 3, 4], [3, 1, 9, 8], k=4)
    assert (a.shared, a.overlap_at_k, a.jaccard) == (2, 0.5, pytest.approx(2 / 6))
    assert a.kendall_tau == -1.0  # 1 before 3 in a, 3 before 1 in b


def test_kendall_tau():
    assert kendall_tau([0, 1, 2], [0, 1, 2]) == 1.0
    assert kendall_tau([0, 1, 2], [2, 1, 0]) == -1.0
    assert kendall_tau([0, 1, 2, 3], [0, 1, 3, 2]) == pytest.approx(4 / 6)
    assert kendall_tau([0], [0]) is None


def test_precision_recall_and_average_precision_per_row():
    relevant = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]], bool)
    assert precision_at(relevant, 1).tolist() == [1.0, 0.0] and precision_at(relevant, 4).tolist() == [0.5, 0.25]
    assert hit_rate_at(relevant, 3).tolist() == [1.0, 0.0] and hit_rate_at(relevant, 4).tolist() == [1.0, 1.0]
    assert precision_curve(relevant, 3)[0].tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    # row 1: hits at ranks 1 and 3 of 4 relevant images: (1/1 + 2/3) / 4; row 2: one hit at rank 4 of 1
    assert average_precision(relevant, np.array([4, 1])) == pytest.approx([(1 + 2 / 3) / 4, 1 / 4])


def test_scores_exclude_the_query_itself():
    labels = ["a", "a", "b", "b"]
    vectors = np.array([[1, 0], [0.9, 0.436], [0, 1], [0.3, 0.954]], np.float32)
    scores = score({"m": vectors}, labels)
    assert scores.modes["m"].summary["P@1"] == 1.0 and scores.modes["m"].summary["mAP"] == 1.0
    assert scores.modes["m"].top[:, 0].tolist() == [1, 0, 3, 2]  # never the query itself


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_chunked_scoring_equals_one_pass_and_the_direct_computation():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 300).astype(str).tolist()
    vectors = {"a": unit_rows(rng, 300, 16), "b": unit_rows(rng, 300, 8)}
    one_pass, chunked = score(vectors, labels, chunk=300), score(vectors, labels, chunk=7)
    assert len(one_pass.modes) == 16  # 4 re-rankings x (2 models, Fused, RRF)
    for mode in one_pass.modes:
        # BLAS rounds other matrix shapes a little differently: a near tie may swap (seen: 1.6e-5 of AP)
        assert one_pass.modes[mode].summary == pytest.approx(chunked.modes[mode].summary, abs=1e-4)
        assert np.allclose(one_pass.modes[mode].ap, chunked.modes[mode].ap, atol=1e-4)
    # mAP of model a, the slow way: one query at a time, sorted by exact cosine
    label_array, aps = np.asarray(labels), []
    for q in range(300):
        similarity = vectors["a"] @ vectors["a"][q]
        order = [i for i in np.argsort(-similarity, kind="stable") if i != q]
        relevant = label_array[order] == label_array[q]
        hits = np.flatnonzero(relevant)
        aps.append(np.sum(np.arange(1, len(hits) + 1) / (hits + 1)) / relevant.sum())
    assert one_pass.modes["a"].summary["mAP"] == pytest.approx(np.mean(aps))


def test_fused_order_ranks_the_pool_of_each_models_top_first_by_mean_cosine():
    # image 3 has the best mean but is in neither model's top 1, so with a pool of 1 it comes after 0 and 1
    a = np.array([[-np.inf, 0.9, 0.1, 0.8, 0.0]])
    b = np.array([[-np.inf, 0.1, 0.9, 0.8, 0.0]])
    assert fused_order([a, b], pool=1)[0].tolist() == [1, 2, 3, 4, 0]
    assert fused_order([a, b], pool=4)[0].tolist() == [3, 1, 2, 4, 0]


def test_agreement_when_the_index_holds_fewer_than_k_images():
    a = agreement([1, 2, 3], [3, 2, 1], k=1000)
    assert (a.k, a.shared, a.overlap_at_k, a.jaccard) == (3, 3, 1.0, 1.0)
    assert agreement([], [], k=10).overlap_at_k == 0.0


def test_the_paired_bootstrap_interval_is_seeded_and_holds_the_difference_it_measures():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.0, 400)
    assert paired_bootstrap(a, a) == (0.0, 0.0)
    better = np.clip(a + 0.05 + rng.normal(0, 0.02, 400), 0, 1)
    low, high = paired_bootstrap(better, a)
    assert 0 < low < float(np.mean(better - a)) < high  # a clear win: the interval leaves 0 out
    noisy = a + rng.normal(0, 0.2, 400)
    low, high = paired_bootstrap(noisy, a, resamples=250, chunk=64)  # chunks that don't divide the draws
    assert low < 0 < high and (low, high) == paired_bootstrap(noisy, a, resamples=250, chunk=64)
