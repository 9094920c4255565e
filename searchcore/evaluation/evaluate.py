"""Evaluation on a labelled folder (one subfolder per class), in two steps.

1. `embed_folder`: files -> vectors per model (the one reader and the Embedder), kept on disk so that a
   second evaluation of the same files with the same model builds skips decoding and inference.
2. `score`: vectors + labels -> metrics, a pure function. Every image queries all others (itself
   excluded) by exact cosine, in chunks of queries, so 50,000 images never need an N x N matrix.
   Modes: each model, and Fused exactly as the app ranks it (`fusion.fused_order`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..encoding.embed import Embedder
from ..batching import batched, spans
from ..files.decode import IMAGE_SUFFIXES, Failure, is_under, read_many
from ..files.pruning import prune
from ..retrieval.fusion import FUSED, FUSION_POOL, RRF, fused_order, rrf_order
from ..retrieval.lists import Ranking
from ..retrieval.options import Rerank
from ..retrieval.rerank import QE_N, RERANKS, dba, top_k, weighted_mean
from ..timing import StageTimes
from .metrics import average_precision, hit_rate_at, jaccard_rows, precision_at, precision_curve

PRECISION_KS = (1, 10, 20)
RECALL_KS = (1, 5, 10)
CURVE_DEPTH = 50
JACCARD_K = 10
TOP_SHOWN = 5
TOP_KEPT = max(JACCARD_K, TOP_SHOWN)
MAX_FOLDERS = 10_000  # bounds of a labelled folder's walk
MAX_IMAGES = 200_000
MAX_WALK_SECONDS = 60
KEPT_EVALUATIONS = 16  # evaluations whose vectors are kept on disk, the most recently used
DISAGREEMENTS = 3  # per direction: where the first model wins most, and where the second does


@dataclass
class Embeddings:
    """The embed step's output: one row per image that could be embedded."""

    paths: list[str]
    sha256s: list[str]
    labels: list[str]
    vectors: dict[str, np.ndarray]
    failed: list[Failure] = field(default_factory=list)
    stages: StageTimes = field(default_factory=StageTimes)
    cached: bool = False


@dataclass
class ModeScores:
    """One ranking mode over every query: the summary row and what the plots need."""

    summary: dict[str, float]
    precision_curve: np.ndarray  # mean P@k, k = 1..CURVE_DEPTH
    ap: np.ndarray  # per query
    top: np.ndarray  # per query: the first TOP_KEPT images' indices


@dataclass
class Scores:
    modes: dict[str, ModeScores]  # by Ranking.key
    jaccard: np.ndarray | None  # per query: Jaccard@JACCARD_K of the first two models' lists
    rankings: dict[str, Ranking] = field(default_factory=dict)  # Ranking.key -> its Ranking


@dataclass(frozen=True)
class Shown:
    """One hit of a disagreement row; `file`, not `path`, in JSON (Gradio's client downloads a "path")."""

    file: str
    sha256: str
    relevant: bool


@dataclass(frozen=True)
class Disagreement:
    """A query where one model's AP beats the other's by much, with both models' first hits."""

    file: str
    sha256: str
    label: str
    ap: dict[str, float]
    top: dict[str, list[Shown]]


@dataclass
class EvalReport:
    root: str
    images: int
    models: list[str]
    classes: list[str]
    scores: dict[str, dict[str, float]]  # Ranking.key -> P@k, R@k, mAP
    rankings: dict[str, Ranking]  # Ranking.key -> its Ranking
    curves: dict[str, list[float]]
    ap_per_class: dict[str, dict[str, float]]  # mode -> class -> mean AP
    jaccard: list[float]
    disagreements: list[Disagreement]
    failed: list[Failure]
    stages: dict[str, float]
    cached: bool
    seconds: float

    def table(self) -> str:
        columns = list(next(iter(self.scores.values())))
        lines = [f"{self.images} images, {len(self.classes)} classes, {len(self.failed)} failed",
                 f"{'mode':<16}" + "".join(f"{c:>8}" for c in columns)]
        lines += [f"{m:<16}" + "".join(f"{s[c]:>8.3f}" for c in columns) for m, s in self.scores.items()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)

    def headline_modes(self) -> list[str]:
        """The modes the plots show: every plain one, and the re-ranked mode with the best mAP."""
        plain = [m for m in self.scores if self.rankings[m].rerank is Rerank.NONE]
        reranked = [m for m in self.scores if self.rankings[m].rerank is not Rerank.NONE]
        return plain + ([max(reranked, key=lambda m: self.scores[m]["mAP"])] if reranked else [])

    def labels(self) -> dict[str, str]:
        """Each ranking's name on the page: ResNet50, Fused (RRF) · DBA+αQE."""
        return {key: ranking.label for key, ranking in self.rankings.items()}

    def shown_files(self) -> list[tuple[str, str]]:
        """(path, sha256) of every image the disagreement rows show."""
        return [(d.file, d.sha256) for d in self.disagreements] + [
            (hit.file, hit.sha256) for d in self.disagreements for hits in d.top.values() for hit in hits]


def labelled_images(root: Path, roots: Sequence[Path] | None = None) -> list[tuple[Path, str]]:
    """(image file, class) for the files below each class folder of root, in path order. A class folder
    whose real path is outside `roots` is left out, links to folders below it are not followed, and the
    walk ends with a ValueError past MAX_FOLDERS folders, MAX_IMAGES images or MAX_WALK_SECONDS."""
    found: list[tuple[Path, str]] = []
    walk = Walk(root)
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and (roots is None or is_under(folder.resolve(), roots)):
            found += sorted((path, folder.name) for path in walk.images(folder))
    return found


class Walk:
    """A bounded walk: it counts folders and images over its calls and says which bound ended it."""

    def __init__(self, root: Path) -> None:
        self.root, self.folders, self.seen, self.started = root, 0, 0, time.monotonic()

    def images(self, top: Path) -> list[Path]:
        found: list[Path] = []
        for folder, _, names in os.walk(top):  # links to folders are listed, never entered
            files = [Path(folder) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
            self.folders, self.seen = self.folders + 1, self.seen + len(files)
            self._check()
            found += files
        return found

    def _check(self) -> None:
        for over, what in ((self.folders > MAX_FOLDERS, f"more than {MAX_FOLDERS:,} folders"),
                           (self.seen > MAX_IMAGES, f"more than {MAX_IMAGES:,} images"),
                           (time.monotonic() - self.started > MAX_WALK_SECONDS,
                            f"more files than can be listed in {MAX_WALK_SECONDS} s")):
            if over:
                raise ValueError(f"{self.root.name} holds {what}; evaluate a smaller folder")


class EmbeddingsFile:
    """An evaluation's vectors on disk, named by the files (path, size, mtime) and the model builds. The
    folder keeps the `kept` most recently used evaluations."""

    def __init__(self, folder: Path, kept: int = KEPT_EVALUATIONS) -> None:
        self.folder, self.kept = folder, kept

    def path(self, files: Sequence[tuple[Path, str]], model_keys: Sequence[str]) -> Path:
        digest = hashlib.sha256(json.dumps(list(model_keys)).encode())
        for path, label in files:
            try:
                st = os.stat(path)
                version = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError:  # a dangling link, a file gone meanwhile: reading it gives its failure
                version = "unreadable"
            digest.update(f"{path}\0{label}\0{version}\n".encode())
        return self.folder / f"{digest.hexdigest()[:32]}.npz"

    def load(self, path: Path, models: Sequence[str]) -> Embeddings | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors = {m: data[f"vectors_{m}"] for m in models}
        except (OSError, KeyError, ValueError):
            return None
        with contextlib.suppress(OSError):
            path.touch()  # used now: the last to be pruned
        return Embeddings(meta["paths"], meta["sha256s"], meta["labels"], vectors,
                          [Failure(**f) for f in meta["failed"]], cached=True)

    def save(self, path: Path, embeddings: Embeddings) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"paths": embeddings.paths, "sha256s": embeddings.sha256s, "labels": embeddings.labels,
                "failed": [asdict(f) for f in embeddings.failed]}
        partial = path.with_suffix(".partial")  # not *.npz: the pruning of another process leaves it alone
        with partial.open("wb") as handle:
            np.savez(handle, meta=json.dumps(meta), **{f"vectors_{m}": v for m, v in embeddings.vectors.items()})
        partial.replace(path)
        prune(self.folder, self.kept, "*.npz")


def embed_folder(root: Path, embedder: Embedder, models: Sequence[str], saved: EmbeddingsFile | None = None,
                 batch_size: int = 32, roots: Sequence[Path] | None = None) -> Embeddings:
    """Every labelled image's vectors per model (or its failure), from the saved file when it matches.
    With `roots`, nothing whose real path is outside them is read."""
    files = labelled_images(root, roots)
    file = saved.path(files, [embedder.encoders[m].cache_key for m in models]) if saved else None
    if file and (found := saved.load(file, models)):
        return found
    out = Embeddings([], [], [], {}, [])
    rows: dict[str, list[np.ndarray]] = {m: [] for m in models}
    label_of = {str(path): label for path, label in files}
    wanted = frozenset(models)
    bar = tqdm(total=len(files), unit="img", desc="embedding", disable=None)

    def batches():
        for chunk in batched([path for path, _ in files], batch_size):
            with out.stages.stage("read"):
                batch = [(raw, wanted) for _, raw in read_many(chunk, out.failed, roots)]
            bar.update(len(chunk) - len(batch))
            yield batch

    for embedded in embedder.stream(batches(), out.stages):
        for item in embedded:
            if item.error:
                out.failed.append(Failure.of(item.error))
                continue
            out.paths.append(item.raw.source)
            out.sha256s.append(item.raw.sha256)
            out.labels.append(label_of[item.raw.source])
            for m in models:
                rows[m].append(item.vectors[m])
        bar.update(len(embedded))
    bar.close()
    out.vectors = {m: np.stack(v) if v else np.zeros((0, embedder.encoders[m].dim), np.float32)
                   for m, v in rows.items()}
    if file:
        saved.save(file, out)
    return out


def score(vectors: Mapping[str, np.ndarray], labels: Sequence[str], chunk: int = 256,
          pool: int = FUSION_POOL, reranks: Sequence[str] = RERANKS) -> Scores:
    """P@k, R@k, mAP, the P@k curve, AP and top hits per query, for every mode: each model, Fused and
    RRF (with 2+ models), each plain and re-ranked. Queries use their own vector (as an upload would);
    with DBA the database vectors are the augmented ones."""
    labels = np.asarray(labels)
    n = len(labels)
    n_relevant = np.array([np.sum(labels == label) - 1 for label in labels])
    names = list(vectors)
    augmented = {m: dba(vectors[m]) for m in names} if any(Rerank(r).augmented for r in reranks) else {}
    databases = {r: augmented if Rerank(r).augmented else vectors for r in reranks}
    parts: dict[Ranking, list[tuple[np.ndarray, np.ndarray]]] = {}
    for part in spans(n, chunk):
        queries = np.arange(n)[part]
        for rerank in reranks:
            similarities = [_similarity(vectors[m][queries], databases[rerank][m], queries, Rerank(rerank).expands)
                            for m in names]
            orders = {m: np.argsort(-sim, axis=1, kind="stable") for m, sim in zip(names, similarities)}
            if len(names) > 1:
                orders[FUSED] = fused_order(similarities, pool)
                orders[RRF] = rrf_order(similarities, pool)
            for base, order in orders.items():
                parts.setdefault(Ranking(base, Rerank(rerank)), []).append(_relevance(order, labels, queries))
    modes = {ranking.key: _mode_scores(np.concatenate([r for r, _ in p]), np.concatenate([t for _, t in p]),
                                       n_relevant)
             for ranking, p in parts.items()}
    jaccard = (jaccard_rows(modes[names[0]].top[:, :JACCARD_K], modes[names[1]].top[:, :JACCARD_K])
               if len(names) > 1 else None)
    return Scores(modes, jaccard, {ranking.key: ranking for ranking in parts})


def _similarity(queries: np.ndarray, database: np.ndarray, rows: np.ndarray, expand: bool) -> np.ndarray:
    """Cosines of the queries to every database image, each query's own row set to -inf; with
    `expand`, of the alpha-QE queries (each expanded with its first QE_N hits)."""
    similarity = queries @ database.T
    similarity[np.arange(len(rows)), rows] = -np.inf  # a query never finds itself
    if expand:
        nearest = top_k(similarity, QE_N)
        expanded = weighted_mean(queries, database[nearest], np.take_along_axis(similarity, nearest, 1))
        similarity = expanded @ database.T
        similarity[np.arange(len(rows)), rows] = -np.inf
    return similarity


def _relevance(order: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relevance flags of each ranking (the query itself, ranked last, cut off) and its first ids."""
    order = order[:, :-1]
    return labels[order] == labels[queries][:, None], order[:, :TOP_KEPT]


def _mode_scores(relevant: np.ndarray, top: np.ndarray, n_relevant: np.ndarray) -> ModeScores:
    ap = average_precision(relevant, n_relevant)
    summary = {f"P@{k}": float(precision_at(relevant, k).mean()) for k in PRECISION_KS}
    summary |= {f"R@{k}": float(hit_rate_at(relevant, k).mean()) for k in RECALL_KS}
    summary["mAP"] = float(ap.mean())
    return ModeScores(summary, precision_curve(relevant, CURVE_DEPTH).mean(axis=0), ap, top)


def report(root: Path, embeddings: Embeddings, scores: Scores, seconds: float) -> EvalReport:
    """The scores as the table, the plots and the 'where they disagree' rows need them."""
    labels = np.asarray(embeddings.labels)
    classes = sorted(set(embeddings.labels))
    names = list(embeddings.vectors)
    return EvalReport(
        root=str(root), images=len(labels), models=names, classes=classes,
        scores={m: s.summary for m, s in scores.modes.items()}, rankings=scores.rankings,
        curves={m: [float(x) for x in s.precision_curve] for m, s in scores.modes.items()},
        ap_per_class={m: {c: float(s.ap[labels == c].mean()) for c in classes} for m, s in scores.modes.items()},
        jaccard=[] if scores.jaccard is None else [float(x) for x in scores.jaccard],
        disagreements=disagreements(embeddings, scores, names[:2]) if len(names) > 1 else [],
        failed=embeddings.failed, stages=dict(embeddings.stages.seconds), cached=embeddings.cached,
        seconds=seconds)


def disagreements(embeddings: Embeddings, scores: Scores, pair: Sequence[str]) -> list[Disagreement]:
    """The queries where the first model's AP beats the second's by the most, then the reverse."""
    a, b = pair
    gap = scores.modes[a].ap - scores.modes[b].ap
    order = np.argsort(-gap, kind="stable")
    picked = [int(i) for i in order[:DISAGREEMENTS] if gap[i] > 0]
    picked += [int(i) for i in order[::-1][:DISAGREEMENTS] if gap[i] < 0]
    paths, shas, labels = embeddings.paths, embeddings.sha256s, embeddings.labels

    def shown(q: int, model: str) -> list[Shown]:
        return [Shown(paths[i], shas[i], labels[i] == labels[q]) for i in scores.modes[model].top[q, :TOP_SHOWN]]
    return [Disagreement(file=paths[q], sha256=shas[q], label=labels[q],
                         ap={m: float(scores.modes[m].ap[q]) for m in pair}, top={m: shown(q, m) for m in pair})
            for q in picked]


def evaluate(root: Path, embedder: Embedder, models: Sequence[str], saved: EmbeddingsFile | None = None,
             roots: Sequence[Path] | None = None) -> EvalReport:
    started = time.perf_counter()
    embeddings = embed_folder(root, embedder, models, saved, roots=roots)
    if len(embeddings.labels) < 2:
        raise ValueError(f"{root.name} holds {len(embeddings.labels)} image(s) that could be read in class folders: "
                         "an evaluation needs a subfolder per class and at least 2 images")
    with embeddings.stages.stage("scoring"):
        scores = score(embeddings.vectors, embeddings.labels)
    return report(root, embeddings, scores, time.perf_counter() - started)
