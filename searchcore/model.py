"""One record per model: what it is called, how it encodes, and the collections that hold its vectors.
The engine, the CLI and the page iterate these, so adding a model touches config.SPECS only."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from .config import ModelSpec, Settings
from .encoding.embed import TURNS
from .encoding.encoder import Encoder
from .retrieval import dba
from .retrieval.options import Rerank, SearchOptions
from .storage import store
from .storage.regions import GroupedSearch, regions_per_image, row_id


@dataclass(frozen=True)
class Model:
    """Everything of one model: its spec, its encoder, where its vectors are (`store`), where their
    database-side augmented versions are (`dba`), and its rows of regions and turns when those are on."""

    spec: ModelSpec
    encoder: Encoder
    store: store.VectorStore
    dba: store.VectorStore
    regions: store.VectorStore | None = None  # with SEARCHCORE_REGIONS on
    turns: store.VectorStore | None = None  # with SEARCHCORE_TURNS on

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label

    def searched(self, rerank: Rerank, regions: bool = False, turns: bool = False, under: str | None = None,
                 ) -> store.Collection:
        """The collection a search with this re-ranking (or on regions, or on the indexed turns) runs on,
        within the folder `under` if one is given."""
        chosen = self._searched(rerank, regions, turns)
        return store.InFolder(chosen, under) if under is not None else chosen

    def _searched(self, rerank: Rerank, regions: bool, turns: bool) -> store.Collection:
        if regions:
            if self.regions is None:
                raise ValueError("region search needs SEARCHCORE_REGIONS=1 while indexing")
            return GroupedSearch(self.regions, self.rows_per_image("regions"))
        if turns:
            return GroupedSearch(self.turns, self.rows_per_image("turns"))
        return self.dba if rerank.augmented else self.store

    def grouped(self) -> dict[str, store.VectorStore]:
        """The collections of several rows per image that this model keeps: "regions", "turns"."""
        return {kind: rows for kind, rows in (("regions", self.regions), ("turns", self.turns)) if rows is not None}

    def rows_per_image(self, kind: str) -> int:
        """Rows per image in the collection of this kind of Model.grouped: the regions of this model's own
        feature grid, or the turns."""
        return regions_per_image(self.encoder.feature_grid) if kind == "regions" else TURNS

    def dba_covers_the_index(self) -> bool:
        """Every indexed image has its DBA vector (not so while an index run has not made them yet)."""
        return self.dba.count() >= self.store.count()

    def turns_cover_the_index(self) -> bool:
        """Every indexed image has its turns (not so for images indexed before SEARCHCORE_TURNS was on)."""
        return self.turns is not None and self.turns.count() == TURNS * self.store.count()

    def remove(self, ids: Sequence[int]) -> set[int]:
        """These images' rows gone from every collection of the model; the DBA vectors that were made with
        them are made anew. Returns the ids that were indexed."""
        present = list(self.store.existing(ids))
        touched = dba.neighbours(self.store, present)
        shas = [r["sha256"] for r in self.store.rows(present).values()]
        for kind, rows in self.grouped().items():
            rows.delete([row_id(sha, n) for sha in shas for n in range(self.rows_per_image(kind))])
        self.store.delete(present)
        self.dba.delete(list(self.dba.existing(present)))
        dba.augment(self.store, self.dba, touched - set(present))
        return set(present)

    def flush(self) -> None:
        """Seal every collection of the model, so that searches use the index."""
        for rows in (self.store, self.dba, *self.grouped().values()):
            rows.flush()

    def stats(self) -> dict:
        manifest = self.encoder.manifest
        return {"label": self.label, "collection": self.store.name, "rows": self.store.count(),
                "dim": self.store.dim, "precision": manifest.precision, "weights": manifest.weights.get("source"),
                "weights_package": manifest.weights.get("package"), "onnx_sha256": manifest.onnx_sha256}


def open_model(spec: ModelSpec, settings: Settings, client: object) -> Model:
    """The model's encoder (its build checked against its manifest) and collections (each refuses
    vectors of another build)."""
    s = settings
    encoder = Encoder(s.model_path(spec.name))

    def collection(prefix: str) -> store.VectorStore:
        return store.VectorStore(client, s.collection(spec.name, prefix), encoder.dim, encoder.manifest.onnx_sha256,
                                 s.milvus_uri, s.milvus_timeout, (s.hnsw_m, s.hnsw_ef_construction), s.index_type)
    return Model(spec, encoder, collection(""), collection("dba_"),
                 collection("regions_") if s.regions else None, collection("turns_") if s.turns else None)


def search_plan(models: Mapping[str, Model], options: SearchOptions, dba_current: bool = True,
                ) -> tuple[dict[str, store.Collection], SearchOptions, bool]:
    """The collection each model searches with these options, the options that run (DBA waits for its
    vectors: while they are not `dba_current`, an index run's images would be missing, so the search
    runs on the plain vectors, with alpha-QE if it was asked for), and whether the robust option runs on
    the indexed turns: only when every indexed image has them and no re-ranking or region search is
    chosen (else the query's own turns are embedded)."""
    o = options
    if o.rerank.augmented and not dba_current:
        o = replace(o, rerank=Rerank.QE if o.rerank.expands else Rerank.NONE)
    indexed_turns = (o.robust and o.rerank is Rerank.NONE and not o.regions
                     and all(m.turns_cover_the_index() for m in models.values()))
    return {name: m.searched(o.rerank, o.regions, indexed_turns, o.under) for name, m in models.items()}, o, \
        indexed_turns
