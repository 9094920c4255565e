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
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..encoding.embed import Embedder
from ..batching import batched, spans
from ..files.decode import IMAGE_SUFFIXES, Failure, RawImage, is_under, read_many
from ..files.pruning import prune
from ..retrieval.fusion import FUSED, FUSION_POOL, RRF, fused_order, rrf_order
from ..retrieval.lists import Ranking
from ..retrieval.options import Rerank
from ..retrieval.rerank import QE_N, RERANKS, dba, top_k, weighted_mean
from ..timing import StageTimes
from .metrics import (average_precision, hit_rate_at, jaccard_rows, paired_bootstrap, precision_at,
                      precision_curve)

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
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


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
    from_index: int = 0  # images whose vectors were read from the index, not embedded


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


@dataclass(frozen=True)
class Verdict:
    """The evaluation in one sentence: the two models' mAP, the 95% interval of their difference (a paired
    bootstrap over the queries, seeded, so the same data give the same interval), and the best mode."""

    models: tuple[str, str]  # the higher mAP first
    mAP: tuple[float, float]
    interval: tuple[float, float]  # of mAP[0] - mAP[1]
    resamples: int
    seed: int
    best: str  # the Ranking.key with the highest mAP of every mode
    best_mAP: float

    def sentence(self, images: int, labels: Mapping[str, str]) -> str:
        first, second = (labels.get(m, m) for m in self.models)
        low, high = self.interval
        outcome = f"{first} and {second} tie" if low <= 0 else f"{first} beats {second}"
        return (f"On these {images:,} photos {outcome} (mAP {self.mAP[0]:.3f} vs {self.mAP[1]:.3f}; 95% interval of "
                f"the difference {low:+.3f}…{high:+.3f}, a paired bootstrap over the queries, {self.resamples:,} "
                f"resamples, seed {self.seed}); {labels.get(self.best, self.best)} is best ({self.best_mAP:.3f}).")


def verdict(scores: Scores, pair: Sequence[str]) -> Verdict:
    ranked = sorted(pair, key=lambda m: -scores.modes[m].summary["mAP"])
    a, b = (scores.modes[m] for m in ranked)
    best = max(scores.modes, key=lambda m: scores.modes[m].summary["mAP"])
    return Verdict(models=tuple(ranked), mAP=(a.summary["mAP"], b.summary["mAP"]),
                   interval=paired_bootstrap(a.ap, b.ap, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
                   resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED, best=best,
                   best_mAP=scores.modes[best].summary["mAP"])


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
    from_index: int = 0  # images scored from the index's vectors (no model run for them)
    verdict: Verdict | None = None  # with two or more models

    def table(self) -> str:
        columns = list(next(iter(self.scores.values())))
        lines = [self.verdict.sentence(self.images, self.labels())] if self.verdict else []
        lines += [f"{self.images} images, {len(self.classes)} classes, {len(self.failed)} failed",
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


def labelled_folders(roots: Sequence[Path], depth: int = 2, limit: int = 50) -> list[Path]:
    """Folders at most `depth` levels under the roots (the roots included) that look labelled: two or more
    subfolders that hold image files themselves. A bounded look (`limit` folders found, MAX_FOLDERS
    looked at), for the Evaluate tab's choices; links to folders are not followed."""
    found: list[Path] = []
    looked = 0
    level = [root for root in roots if root.is_dir()]
    for _ in range(depth + 1):
        below: list[Path] = []
        for folder in level:
            subfolders = _subfolders(folder)
            looked += 1 + len(subfolders)
            if sum(map(_holds_images, subfolders)) >= 2:
                found.append(folder)
            below += subfolders
            if len(found) >= limit or looked > MAX_FOLDERS:
                return found
        level = below
    return found


def _subfolders(folder: Path) -> list[Path]:
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    return []


def _holds_images(folder: Path) -> bool:
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        return any(Path(e.name).suffix.lower() in IMAGE_SUFFIXES for e in entries)
    return False


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


# A model's stored vectors of these images (id -> sha256), by id: how an evaluation reads what is indexed.
Stored = Callable[[str, Mapping[int, str]], Mapping[int, np.ndarray]]


def embed_folder(root: Path, embedder: Embedder, models: Sequence[str], saved: EmbeddingsFile | None = None,
                 batch_size: int = 32, roots: Sequence[Path] | None = None, stored: Stored | None = None
                 ) -> Embeddings:
    """Every labelled image's vectors per model (or its failure), from the saved file when it matches.
    With `stored`, an image whose vectors the index holds (of the same builds) is not decoded nor run
    through a model: only the others are embedded. With `roots`, nothing outside them is read."""
    files = labelled_images(root, roots)
    file = saved.path(files, [embedder.encoders[m].cache_key for m in models]) if saved else None
    if file and (found := saved.load(file, models)):
        return found
    out = Embeddings([], [], [], {}, [])
    rows: dict[str, list[np.ndarray]] = {m: [] for m in models}
    label_of = {str(path): label for path, label in files}
    bar = tqdm(total=len(files), unit="img", desc="embedding", disable=None)

    def add(raw: RawImage, vectors: Mapping[str, np.ndarray]) -> None:
        out.paths.append(raw.source)
        out.sha256s.append(raw.sha256)
        out.labels.append(label_of[raw.source])
        for m in models:
            rows[m].append(vectors[m])

    def batches():
        """What is left to embed, batch by batch, each image with the models its vectors are missing for."""
        for chunk in batched([path for path, _ in files], batch_size):
            with out.stages.stage("read"):
                raws = [raw for _, raw in read_many(chunk, out.failed, roots)]
            with out.stages.stage("stored"):
                known = _stored_vectors(raws, models, stored) if stored else {}
            left = [(raw, frozenset(models) - known.get(raw.id, {}).keys()) for raw in raws]
            for raw, missing in left:
                if not missing:
                    add(raw, known[raw.id])
                    out.from_index += 1
            bar.update(len(chunk) - sum(1 for _, missing in left if missing))
            pending.update({raw.id: known.get(raw.id, {}) for raw, missing in left if missing})
            yield [(raw, missing) for raw, missing in left if missing]

    pending: dict[int, dict[str, np.ndarray]] = {}
    for embedded in embedder.stream(batches(), out.stages):
        for item in embedded:
            if item.error:
                out.failed.append(Failure.of(item.error))
            else:
                add(item.raw, {**pending.get(item.raw.id, {}), **item.vectors})  # copies share an id
        bar.update(len(embedded))
    bar.close()
    _in_file_order(out, rows, [str(path) for path, _ in files])
    out.vectors = {m: np.stack(v) if v else np.zeros((0, embedder.encoders[m].dim), np.float32)
                   for m, v in rows.items()}
    if file:
        saved.save(file, out)
    return out


def _in_file_order(out: Embeddings, rows: dict[str, list[np.ndarray]], files: list[str]) -> None:
    """The images in the order of the files (the index's vectors came first): the same folder gives the
    same queries in the same order, so the seeded bootstrap gives the same interval whatever is indexed."""
    position = {path: n for n, path in enumerate(files)}
    order = sorted(range(len(out.paths)), key=lambda n: position[out.paths[n]])
    out.paths, out.sha256s, out.labels = ([values[n] for n in order] for values in (out.paths, out.sha256s, out.labels))
    for m in rows:
        rows[m] = [rows[m][n] for n in order]


def _stored_vectors(raws: Sequence[RawImage], models: Sequence[str], stored: Stored
                    ) -> dict[int, dict[str, np.ndarray]]:
    """id -> model -> the index's vector, for the images the index holds."""
    found: dict[int, dict[str, np.ndarray]] = {}
    images = {raw.id: raw.sha256 for raw in raws}
    for m in models:
        for i, vector in stored(m, images).items():
            found.setdefault(i, {})[m] = vector
    return found


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
        seconds=seconds, from_index=embeddings.from_index,
        verdict=verdict(scores, names[:2]) if len(names) > 1 else None)


def disagreements(embeddings: Embeddings, scores: Scores, pair: Sequence[str]) -> list[Disagreement]:
    """The queries whose first TOP_SHOWN hits differ most between the models (precision at TOP_SHOWN, ties
    broken by AP), where the first model does better, then the reverse: rows whose pictures show it."""
    a, b = pair
    labels_array = np.asarray(embeddings.labels)

    def shown_precision(model: str) -> np.ndarray:
        return np.mean(labels_array[scores.modes[model].top[:, :TOP_SHOWN]] == labels_array[:, None], axis=1)
    shown_gap = shown_precision(a) - shown_precision(b)
    order = np.lexsort((-(scores.modes[a].ap - scores.modes[b].ap), -shown_gap))
    picked = [int(i) for i in order[:DISAGREEMENTS] if shown_gap[i] > 0]
    picked += [int(i) for i in order[::-1][:DISAGREEMENTS] if shown_gap[i] < 0]
    paths, shas, labels = embeddings.paths, embeddings.sha256s, embeddings.labels

    def shown(q: int, model: str) -> list[Shown]:
        return [Shown(paths[i], shas[i], labels[i] == labels[q]) for i in scores.modes[model].top[q, :TOP_SHOWN]]
    return [Disagreement(file=paths[q], sha256=shas[q], label=labels[q],
                         ap={m: float(scores.modes[m].ap[q]) for m in pair}, top={m: shown(q, m) for m in pair})
            for q in picked]


def evaluate(root: Path, embedder: Embedder, models: Sequence[str], saved: EmbeddingsFile | None = None,
             roots: Sequence[Path] | None = None, stored: Stored | None = None) -> EvalReport:
    started = time.perf_counter()
    embeddings = embed_folder(root, embedder, models, saved, roots=roots, stored=stored)
    if len(embeddings.labels) < 2:
        raise ValueError(f"{root.name} holds {len(embeddings.labels)} image(s) that could be read in class folders: "
                         "an evaluation needs a subfolder per class and at least 2 images")
    if len(classes := sorted(set(embeddings.labels))) < 2:
        raise ValueError(f"{root.name} holds 1 class ({classes[0]}); an evaluation needs two or more class "
                         "folders, or every hit would count as relevant")
    with embeddings.stages.stage("scoring"):
        scores = score(embeddings.vectors, embeddings.labels)
    return report(root, embeddings, scores, time.perf_counter() - started)
