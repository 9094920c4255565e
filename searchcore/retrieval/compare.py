"""How two models' result lists agree, and one list fused from several."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence


@dataclass(frozen=True)
class Agreement:
    """overlap@k = shared/k; Jaccard = shared/union; Kendall tau over the shared hits' ranks."""

    k: int
    shared: int
    overlap_at_k: float
    jaccard: float
    kendall_tau: float | None


def agreement(a: Sequence[int], b: Sequence[int], k: int) -> Agreement:
    """Agreement of the top k of two lists; k shrinks to the longer list when the index holds fewer
    than k images (overlap@k then still reaches 1.0 for identical lists)."""
    k = min(k, max(len(a), len(b)))
    a, b = list(a[:k]), list(b[:k])
    shared = [x for x in a if x in set(b)]
    union = len(set(a) | set(b))
    return Agreement(k=k, shared=len(shared), overlap_at_k=len(shared) / k if k else 0.0,
                     jaccard=len(shared) / union if union else 0.0,
                     kendall_tau=kendall_tau([a.index(x) for x in shared], [b.index(x) for x in shared]))


def kendall_tau(ranks_a: Sequence[int], ranks_b: Sequence[int]) -> float | None:
    """Tau-a of two rankings of the same items (no ties); None for fewer than two items."""
    n = len(ranks_a)
    if n < 2:
        return None
    score = sum(1 if (ranks_a[i] - ranks_a[j]) * (ranks_b[i] - ranks_b[j]) > 0 else -1
                for i, j in combinations(range(n), 2))
    return score / (n * (n - 1) / 2)
