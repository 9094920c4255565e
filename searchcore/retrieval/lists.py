"""The names of a result's ranked lists, typed: a model's own list (by the model's name), a list fused
from every model's (Fusion), and the hits that only one model found (OnlyIn); and a ranking of the
evaluation (Ranking: a list and its re-ranking)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence, Union

from ..config import SPECS
from .options import Rerank


class Fusion(str, Enum):
    """A list fused from every model's: by mean cosine, or by reciprocal rank fusion."""

    MEAN = "fused"
    RRF = "rrf"

    @property
    def label(self) -> str:
        return "Fused" if self is Fusion.MEAN else "Fused (RRF)"


@dataclass(frozen=True)
class OnlyIn:
    """The hits of one model's list that no other model's list holds."""

    model: str


ListName = Union[str, Fusion, OnlyIn]  # a str is a model's name: its own list


def list_label(name: str | Fusion) -> str:
    """A model's label (ResNet50) or a fused list's (Fused, Fused (RRF))."""
    if isinstance(name, Fusion):
        return name.label
    return SPECS[name].label if name in SPECS else name


@dataclass(frozen=True)
class Ranking:
    """A list of the evaluation and its re-ranking; `key` names it in reports (resnet50, rrf+dba+qe)."""

    base: str | Fusion
    rerank: Rerank = Rerank.NONE

    @property
    def key(self) -> str:
        base = self.base.value if isinstance(self.base, Fusion) else self.base
        return base if self.rerank is Rerank.NONE else f"{base}+{self.rerank.value}"

    @property
    def label(self) -> str:
        return list_label(self.base) + ("" if self.rerank is Rerank.NONE else f" · {self.rerank.label}")


def rank_of(ids: Sequence[int], image_id: int) -> int | None:
    """The 1-based rank of an image in a list of ids, None if it is not there."""
    return next((rank for rank, i in enumerate(ids, 1) if i == image_id), None)
