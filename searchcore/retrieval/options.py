"""How a search runs, typed and checked once: how many hits, which re-ranking, whether the query is also
matched turned and mirrored, whether the indexed images' regions are searched. Every search entry point
(the engine, the CLI, the app) takes one SearchOptions."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_TOP_K = 1000


class Rerank(str, Enum):
    """Re-ranking with the same models (rerank.py): alpha-QE expands the query, DBA searches the
    augmented database vectors, or both. A str, so the value is what the API and JSON carry."""

    NONE = "none"
    QE = "qe"
    DBA = "dba"
    DBA_QE = "dba+qe"

    @property
    def expands(self) -> bool:
        """The query is expanded with its first hits (alpha-QE)."""
        return self in (Rerank.QE, Rerank.DBA_QE)

    @property
    def augmented(self) -> bool:
        """The search runs on the DBA vectors."""
        return self in (Rerank.DBA, Rerank.DBA_QE)

    @property
    def label(self) -> str:
        """How the page names it: αQE, DBA, DBA+αQE ("" for none)."""
        return {"none": "", "qe": "αQE", "dba": "DBA", "dba+qe": "DBA+αQE"}[self.value]

    @classmethod
    def of(cls, value: object) -> "Rerank":
        """The re-ranking a value names, or a ValueError that lists the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"re-ranking must be one of {', '.join(r.value for r in cls)}, not {value!r}") from None


def check_top_k(k: object) -> int:
    """k itself, if it is a whole number from 1 to MAX_TOP_K; otherwise a ValueError that says so."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"top k must be a whole number from 1 to {MAX_TOP_K}, not {k!r}")
    return k


@dataclass(frozen=True)
class SearchOptions:
    """rerank may be given as its value ("dba+qe"): it is made a Rerank here, with the choices named if it
    is none of them."""

    k: int = 10
    rerank: Rerank = Rerank.NONE
    robust: bool = False  # also match the query turned by 90, 180 and 270 degrees and mirrored
    regions: bool = False  # search the indexed images' regional descriptors (for crops)

    def __post_init__(self) -> None:
        check_top_k(self.k)
        object.__setattr__(self, "rerank", Rerank.of(self.rerank))
        if self.regions and self.rerank is not Rerank.NONE:
            raise ValueError("region search runs on the plain region vectors: choose no re-ranking with it")


# The options the robustness view and script compare, by name.
COMPARED_OPTIONS: dict[str, SearchOptions] = {"plain": SearchOptions(), "robust": SearchOptions(robust=True),
                                              "dba+qe": SearchOptions(rerank=Rerank.DBA_QE)}
