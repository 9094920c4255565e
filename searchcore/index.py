"""Indexing runner: files -> raw bytes -> (skip what is stored) -> embed -> Milvus, batch by batch.

A batch is written while the next one is embedded (one write at a time, in order), a file counts as
done only once its batch is written, and ids are content hashes, so a run killed at any point loses
nothing already written and a re-run adds only what is missing.
"""
from __future__ import annotations

import contextvars
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from .encoding.embed import Embedded, Embedder
from .batching import batched
from .files.decode import IMAGE_SUFFIXES, Failure, RawImage, read_many, safe_file_name
from .storage.regions import row_id
from .storage.store import VectorStore
from .timing import StageTimes


@dataclass
class IndexReport:
    indexed: int = 0
    already: int = 0
    duplicates: int = 0
    failed: list[Failure] = field(default_factory=list)
    links_out: list[str] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)  # files whose row now holds their own path
    new_ids: set[int] = field(default_factory=set)  # ids written by this run
    seconds: float = 0.0
    stages: StageTimes = field(default_factory=StageTimes)

    def summary(self) -> str:
        text = (f"indexed {self.indexed}, already there {self.already}, duplicates {self.duplicates}, "
                f"failed {len(self.failed)} ({self.seconds:.1f} s)")
        if self.links_out:
            text += f"; {len(self.links_out)} file(s) reached through links that lead outside the folder given"
        return text

    def failures_by_kind(self) -> dict[str, list[Failure]]:
        grouped: dict[str, list[Failure]] = {}
        for failure in self.failed:
            grouped.setdefault(failure.kind, []).append(failure)
        return dict(sorted(grouped.items(), key=lambda item: -len(item[1])))


def find_images(paths: Iterable[Path | str], report: IndexReport) -> list[Path]:
    """Image files under the given files and folders (recursive, sorted), each by its own absolute
    path (links are not resolved here: the reader checks where they lead). Missing paths are failures;
    files whose links lead outside the folder they were found in are noted in the report."""
    found: list[Path] = []
    for given in paths:
        path = Path(os.path.abspath(Path(given).expanduser()))
        if path.is_dir():
            real_folder = path.resolve()
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                found.append(file)
                if not file.resolve().is_relative_to(real_folder):
                    report.links_out.append(str(file))
        elif path.exists():
            found.append(path)
        else:
            report.failed.append(Failure(str(given), "no such file or folder", "no such file or folder"))
    return list(dict.fromkeys(found))


@dataclass
class Copies:
    """The files of a run that have the same bytes as one read before them. Each is a duplicate, unless
    the first of its bytes failed: then it is a failure of its own, for the same reason (5,000 empty
    files were "duplicates 4999, failed 1")."""

    pending: dict[str, list[str]] = field(default_factory=dict)  # sha256 -> the copies' paths, until known
    failed: dict[str, Failure] = field(default_factory=dict)  # sha256 -> the first one's failure

    def seen(self, raw: RawImage, report: IndexReport) -> bool:
        """Whether these bytes were read before in this run; a copy is counted as it is known."""
        if raw.sha256 in self.failed:
            report.failed.append(replace(self.failed[raw.sha256], source=raw.source))
        elif raw.sha256 in self.pending:
            self.pending[raw.sha256].append(raw.source)
            report.duplicates += 1
        else:
            self.pending[raw.sha256] = []
            return False
        return True

    def settle(self, raw: RawImage, failure: Failure | None, report: IndexReport) -> None:
        """The first of these bytes is done: its copies so far were duplicates, or fail with it."""
        copies = self.pending.pop(raw.sha256, [])
        if failure is not None:
            self.failed[raw.sha256] = failure
            report.duplicates -= len(copies)
            report.failed += [replace(failure, source=copy) for copy in copies]


class Indexer:
    """Writes the vectors of new images into one store per model."""

    def __init__(self, embedder: Embedder, stores: Mapping[str, VectorStore], batch_size: int,
                 roots: Sequence[Path] | None = None, on_progress: Callable[[int, int], None] | None = None,
                 grouped_stores: Mapping[str, Mapping[str, VectorStore]] | None = None) -> None:
        """With `roots`, only files whose real path lies under them are read (the app's rule);
        `on_progress(done, total)` is called as files are done, besides the tqdm bar; `grouped_stores`
        ("regions" or "turns" -> model -> store) get those rows of the images written (when the embedder
        makes them)."""
        self.embedder = embedder
        self.stores = dict(stores)
        self.grouped_stores = {kind: dict(stores) for kind, stores in (grouped_stores or {}).items()}
        self.batch_size = batch_size
        self.roots = roots
        self.on_progress = on_progress

    def run(self, paths: Iterable[Path | str]) -> IndexReport:
        """Index every image under the paths; progress is a tqdm bar (Gradio's Progress can track it)."""
        report = IndexReport()
        return self._run(find_images(paths, report), report)

    def run_raws(self, raws: Sequence[RawImage]) -> IndexReport:
        """Index images already read (uploads are kept in memory until they are known good)."""
        return self._run(list(raws), IndexReport())

    def _run(self, items: list[Path | RawImage], report: IndexReport) -> IndexReport:
        started = time.perf_counter()
        bar = tqdm(total=len(items), unit="img", desc="indexing", disable=None)

        done = 0

        def advance(count: int) -> None:  # the bar's own count stays 0 when it is off (no terminal)
            nonlocal done
            done += count
            bar.update(count)
            if self.on_progress:
                self.on_progress(done, len(items))

        copies = Copies()
        plans = (self._plan(self._load(batch, report, advance), copies, report, advance)
                 for batch in batched(items, self.batch_size))
        with ThreadPoolExecutor(1, thread_name_prefix="write") as writer:  # writes overlap the next inference
            writing: tuple[list[Embedded], Future] | None = None
            for embedded in self.embedder.stream(plans, report.stages, indexing=True):
                if writing:
                    self._written(*writing, copies, report, advance)
                # in this thread's context: a write outlives a paused Milvus as the run does (store.patient)
                writing = embedded, writer.submit(contextvars.copy_context().run, self._write, embedded, report.stages)
            if writing:
                self._written(*writing, copies, report, advance)
        bar.close()
        report.seconds = time.perf_counter() - started
        return report

    def _load(self, batch: list[Path | RawImage], report: IndexReport, advance: Callable[[int], None],
              ) -> list[RawImage]:
        """The batch's bytes: files are read (only under the roots, if any); failures are recorded."""
        before = len(report.failed)
        paths = [item for item in batch if not isinstance(item, RawImage)]
        raws = [item for item in batch if isinstance(item, RawImage)]
        with report.stages.stage("read"):
            raws += [raw for _, raw in read_many(paths, report.failed, self.roots)]
        advance(len(report.failed) - before)
        return raws

    def _plan(self, loaded: list[RawImage], copies: Copies, report: IndexReport, advance: Callable[[int], None],
              ) -> list[tuple[RawImage, frozenset[str]]]:
        """Keep what some model still lacks; count the rest."""
        raws: list[RawImage] = []
        for raw in loaded:
            if copies.seen(raw, report):
                advance(1)
                continue
            raws.append(raw)
        stored = {name: store.existing(r.id for r in raws) for name, store in self.stores.items()}
        plan = []
        for raw in raws:
            needs = frozenset(name for name in self.stores if raw.id not in stored[name])
            if needs:
                plan.append((raw, needs))
                continue
            copies.settle(raw, None, report)
            paths = {stored[name][raw.id] for name in self.stores}
            if raw.source in paths:
                report.already += 1
                report.stored.add(raw.source)
            else:
                report.duplicates += 1
            advance(1)
        return plan

    def _write(self, embedded: list[Embedded], times: StageTimes) -> None:
        """A batch's rows upserted into every store (on the writer thread)."""
        with times.stage("write"):
            for kind, stores in self.grouped_stores.items():  # these first: an image in `stores` has them all
                for name, store in stores.items():
                    store.upsert([{"id": row_id(e.raw.sha256, n), "vector": v, "path": e.raw.source,
                                   "sha256": e.raw.sha256}
                                  for e in embedded if name in getattr(e, kind)
                                  for n, v in enumerate(getattr(e, kind)[name])])
            for name, store in self.stores.items():
                store.upsert([{"id": e.raw.id, "vector": e.vectors[name], "path": e.raw.source,
                               "sha256": e.raw.sha256} for e in embedded if name in e.vectors])

    @staticmethod
    def _written(embedded: list[Embedded], writing: Future, copies: Copies, report: IndexReport,
                 advance: Callable[[int], None]) -> None:
        """Once a batch's write is done (its failure raised here), each image counted as indexed or failed."""
        writing.result()
        for e in embedded:
            failure = Failure.of(e.error) if e.error is not None else None
            if failure:
                report.failed.append(failure)
            else:
                report.indexed += 1
                report.stored.add(e.raw.source)
                report.new_ids.add(e.raw.id)
            copies.settle(e.raw, failure, report)
        advance(len(embedded))


def read_uploads(files: Sequence[Path | str], uploads: Path) -> tuple[list[RawImage], list[Failure], dict[str, str]]:
    """Uploaded files (temp paths) read, each named `uploads/<sha12>-<name>` (not written yet), the
    failures, and a map from every path a report may name to the upload's own name."""
    failures: list[Failure] = []
    names: dict[str, str] = {}
    raws = []
    for path, raw in read_many(files, failures):
        kept = uploads / f"{raw.sha256[:12]}-{safe_file_name(Path(path).name)}"
        names[str(kept)] = Path(path).name
        raws.append(replace(raw, source=str(kept)))
    names.update({f.source: Path(f.source).name for f in failures})
    return raws, failures, names


def keep_uploads(raws: Sequence[RawImage], report: IndexReport) -> None:
    """Write each upload whose vectors are stored to its own name: nothing else is ever kept or served
    from the uploads folder."""
    for raw in raws:
        kept = Path(raw.source)
        if raw.source in report.stored and not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(raw.data)
