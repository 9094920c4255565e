"""Agreement between result lists, and the retrieval metrics, on hand-worked examples."""
from __future__ import annotations

import numpy as np
import pytest

from searchcore.compare import agreement, kendall_tau
from searchcore.evaluate import rank_scores
from searchcore.metrics import average_precision, precision_at


def test_agreement_of_two_lists():
    a = agreement([1, 2, 3, 4], [3, 1, 9, 8], k=4)
    assert (a.shared, a.overlap_at_k, a.jaccard) == (2, 0.5, pytest.approx(2 / 6))
    assert a.kendall_tau == -1.0  # 1 before 3 in a, 3 before 1 in b


def test_kendall_tau():
    assert kendall_tau([0, 1, 2], [0, 1, 2]) == 1.0
    assert kendall_tau([0, 1, 2], [2, 1, 0]) == -1.0
    assert kendall_tau([0, 1, 2, 3], [0, 1, 3, 2]) == pytest.approx(4 / 6)
    assert kendall_tau([0], [0]) is None


def test_precision_and_average_precision():
    relevant = np.array([1, 0, 1, 0, 0], bool)
    assert precision_at(relevant, 1) == 1.0 and precision_at(relevant, 4) == 0.5
    # hits at ranks 1 and 3 of 4 relevant items: (1/1 + 2/3) / 4
    assert average_precision(relevant, 4) == pytest.approx((1 + 2 / 3) / 4)


def test_rank_scores_exclude_the_query_itself():
    labels = np.array(["a", "a", "b", "b"])
    similarity = np.array([[1, .9, .1, .2], [.9, 1, .3, .1], [.1, .3, 1, .8], [.2, .1, .8, 1]])
    scores = rank_scores(similarity, labels, ks=(1,))
    assert scores == {"P@1": 1.0, "mAP": 1.0}


def test_agreement_when_the_index_holds_fewer_than_k_images():
    a = agreement([1, 2, 3], [3, 2, 1], k=1000)
    assert (a.k, a.shared, a.overlap_at_k, a.jaccard) == (3, 3, 1.0, 1.0)
    assert agreement([], [], k=10).overlap_at_k == 0.0
