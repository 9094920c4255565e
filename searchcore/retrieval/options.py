"""How a search runs, typed and checked once: how many hits, which re-ranking, whether the query is also
matched turned and mirrored, whether the indexed images' regions are searched. Every search entry point
(the engine, the CLI, the app) takes one SearchOptions; an Intent names the options that serve a task."""
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
    under: str | None = None  # only the images whose stored path lies under this folder

    def __post_init__(self) -> None:
        check_top_k(self.k)
        object.__setattr__(self, "rerank", Rerank.of(self.rerank))
        if self.regions and self.rerank is not Rerank.NONE:
            raise ValueError("region search runs on the plain region vectors: choose no re-ranking with it")


# The options the robustness view and script compare, by name.
COMPARED_OPTIONS: dict[str, SearchOptions] = {"plain": SearchOptions(), "robust": SearchOptions(robust=True),
                                              "dba+qe": SearchOptions(rerank=Rerank.DBA_QE)}


class Intent(str, Enum):
    """What a person is looking for, and the options that find it best (measured on both tasks by
    scripts/intents.py): photos of the same kind of scene (DBA+alpha-QE lifts that most, and finds edited
    copies worse), or the same photo after an edit (the query also matched turned and mirrored, and,
    where the index holds them, the indexed images' regions for crops)."""

    SIMILAR = "similar"
    SAME = "same"

    @property
    def label(self) -> str:
        return {"similar": "Similar photos", "same": "The same photo, edited"}[self.value]

    def options(self, k: int, regions_indexed: bool) -> SearchOptions:
        """This intent's options with k hits; region search only where the index holds regions."""
        if self is Intent.SIMILAR:
            return SearchOptions(k, Rerank.DBA_QE)
        return SearchOptions(k, robust=True, regions=regions_indexed)

    @classmethod
    def of(cls, options: SearchOptions, regions_indexed: bool) -> "Intent | None":
        """The intent whose options these are (k aside), or None for another combination."""
        return next((i for i in cls if i.options(options.k, regions_indexed) == options), None)
