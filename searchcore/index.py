"""Indexing runner: files -> raw bytes -> (skip what is stored) -> embed -> Milvus, batch by batch.

Each batch is written before the next one is read further, and ids are content hashes, so a run
killed at any point loses nothing already written and a re-run adds only what is missing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from tqdm.auto import tqdm

from .decode import IMAGE_SUFFIXES, DecodeError, RawImage, read_raw
from .embed import Embedded, Embedder
from .store import VectorStore


@dataclass
class IndexReport:
    indexed: int = 0
    already: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"indexed {self.indexed}, already there {self.already}, duplicates {self.duplicates}, "
                f"failed {len(self.failed)} ({self.seconds:.1f} s)")


def find_images(paths: Iterable[Path | str], report: IndexReport) -> list[Path]:
    """Image files under the given files and folders (recursive, sorted); missing paths are failures."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p.resolve() for p in path.rglob("*")
                                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path.resolve())
        else:
            report.failed.append((str(path), "no such file or directory"))
    return list(dict.fromkeys(found))


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Indexer:
    """Writes the vectors of new images into one store per model."""

    def __init__(self, embedder: Embedder, stores: Mapping[str, VectorStore], batch_size: int) -> None:
        self.embedder = embedder
        self.stores = dict(stores)
        self.batch_size = batch_size

    def run(self, paths: Iterable[Path | str]) -> IndexReport:
        """Index every image under the paths; progress is a tqdm bar (Gradio's Progress can track it)."""
        started = time.perf_counter()
        report = IndexReport()
        files = find_images(paths, report)
        bar = tqdm(total=len(files), unit="img", desc="indexing", disable=None)
        seen: set[str] = set()
        plans = (self._plan(batch, seen, report, bar) for batch in _batched(files, self.batch_size))
        for embedded in self.embedder.stream(plans):
            self._write(embedded, report)
            bar.update(len(embedded))
        bar.close()
        report.seconds = time.perf_counter() - started
        return report

    def _plan(self, files: list[Path], seen: set[str], report: IndexReport, bar: tqdm,
              ) -> list[tuple[RawImage, frozenset[str]]]:
        """Read a batch and keep what some model still lacks; count the rest."""
        raws: list[RawImage] = []
        for path in files:
            try:
                raw = read_raw(path)
            except DecodeError as exc:
                report.failed.append((exc.source, exc.reason))
                bar.update(1)
                continue
            if raw.sha256 in seen:
                report.duplicates += 1
                bar.update(1)
                continue
            seen.add(raw.sha256)
            raws.append(raw)
        stored = {name: store.existing(r.id for r in raws) for name, store in self.stores.items()}
        plan = []
        for raw in raws:
            needs = frozenset(name for name in self.stores if raw.id not in stored[name])
            if needs:
                plan.append((raw, needs))
                continue
            paths = {stored[name][raw.id] for name in self.stores}
            if raw.source in paths:
                report.already += 1
            else:
                report.duplicates += 1
            bar.update(1)
        return plan

    def _write(self, embedded: list[Embedded], report: IndexReport) -> None:
        for name, store in self.stores.items():
            store.upsert([{"id": e.raw.id, "vector": e.vectors[name], "path": e.raw.source,
                           "sha256": e.raw.sha256} for e in embedded if name in e.vectors])
        for e in embedded:
            if e.error is not None:
                report.failed.append((e.error.source, e.error.reason))
            else:
                report.indexed += 1
