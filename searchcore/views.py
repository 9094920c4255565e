"""What the web app shows, as plain values for its components: galleries, captions, texts, tables.

Kept out of app.py so that app.py only wires components to these functions and the engine.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .engine import Engine
from .index import IndexReport
from .manifest import file_digest
from .search import FusedHit, QueryResult
from .store import Hit

LABELS = {"resnet50": "ResNet50", "vgg16": "VGG16"}
MODES: dict[str, tuple[str, ...]] = {"Side by side": ("resnet50", "vgg16"), "ResNet50": ("resnet50",),
                                     "VGG16": ("vgg16",), "Fused": ("resnet50", "vgg16")}
FUSED = "fused"


def servable(path: str, roots: Sequence[Path]) -> bool:
    """A file the app may show: it exists and, symlinks resolved, lies under one of the roots."""
    real = Path(path).resolve()
    return real.is_file() and any(real.is_relative_to(root) for root in roots)


def shown_hits(result: QueryResult, name: str, roots: Sequence[Path]) -> list[tuple[int, Hit | FusedHit]]:
    """(rank, hit) for the hits of one list that can be shown; ranks stay those of the full list."""
    hits = result.fused if name == FUSED else result.hits.get(name, [])
    return [(rank, h) for rank, h in enumerate(hits, 1) if servable(h.path, roots)]


def gallery(result: QueryResult, name: str, roots: Sequence[Path]) -> list[tuple[str, str]]:
    """(path, caption) pairs, caption `#3 · L2 0.41`, `· both` where both models found the hit."""
    if name == FUSED:
        return [(h.path, f"#{r} · cos {h.cosine:.2f}") for r, h in shown_hits(result, name, roots)]
    others = [{h.id for h in hits} for m, hits in result.hits.items() if m != name]
    shared = set.intersection(*others) if others else set()
    return [(h.path, f"#{r} · L2 {h.l2:.2f}" + (" · both" if h.id in shared else ""))
            for r, h in shown_hits(result, name, roots)]


def agreement_text(result: QueryResult) -> str:
    if not result.agreement:
        return ""
    a = next(iter(result.agreement.values()))
    tau = "n/a" if a.kendall_tau is None else f"{a.kendall_tau:.2f}"
    return (f"**Agreement of ResNet50 and VGG16** (top {a.k}): {a.shared} shared hits · overlap@{a.k} "
            f"{a.overlap_at_k:.2f} · Jaccard {a.jaccard:.2f} · Kendall τ {tau} on the shared hits")


def status_text(result: QueryResult, roots: Sequence[Path]) -> str:
    if result.error:
        return f"⚠️ {result.error}"
    own = any(result.is_self(h) for hits in result.hits.values() for h in hits)
    text = f"Query `{Path(result.query).name}`" + (" — this very image is indexed (its own hit is shown)" if own else "")
    hidden = {h.path for hits in result.hits.values() for h in hits if not servable(h.path, roots)}
    return text + (f" — {len(hidden)} hit(s) not shown: file gone or outside the served folders" if hidden else "")


@dataclass(frozen=True)
class Selection:
    path: str
    text: str


def hit_details(engine: Engine, result: QueryResult, name: str, index: int, roots: Sequence[Path]) -> Selection:
    """The selected hit: path, id, and its rank and exact distance under each model."""
    _, hit = shown_hits(result, name, roots)[index]
    lines = [f"**{Path(hit.path).name}**", f"- path: `{hit.path}`", f"- id: `{hit.id}`"]
    for model, query_vector in result.vectors.items():
        stored = engine.stores[model].vectors([hit.id]).get(hit.id)
        ranks = [r for r, h in enumerate(result.hits[model], 1) if h.id == hit.id]
        rank = f"#{ranks[0]}" if ranks else f"not in the top {len(result.hits[model])}"
        if stored is None:
            lines.append(f"- {LABELS[model]}: not indexed")
            continue
        cosine = float(stored @ query_vector)
        lines.append(f"- {LABELS[model]}: {rank} · L2 {math.sqrt(max(0.0, 2 - 2 * cosine)):.3f} · cosine {cosine:.3f}")
    return Selection(path=hit.path, text="\n".join(lines))


def under_roots(folder: str, roots: Sequence[Path]) -> Path:
    """The folder, resolved, if it lies under one of the operator's roots; otherwise ValueError."""
    path = Path(folder).expanduser().resolve()
    if not any(path == root or path.is_relative_to(root) for root in roots):
        allowed = ", ".join(f"`{r}`" for r in roots) or "none configured (SEARCHCORE_INDEX_ROOTS)"
        raise ValueError(f"`{folder}` is not under an allowed folder: {allowed}")
    if not path.is_dir():
        raise ValueError(f"`{folder}` is not a folder on the server")
    return path


def keep_uploads(files: Sequence[str], uploads: Path) -> dict[str, str]:
    """Copy uploaded files (temp paths) into the uploads folder; returns copy path -> original name."""
    uploads.mkdir(parents=True, exist_ok=True)
    kept = {}
    for file in files:
        source = Path(file)
        target = uploads / f"{file_digest(source)[:12]}-{source.name}"
        shutil.copyfile(source, target)
        kept[str(target.resolve())] = source.name
    return kept


def index_summary(report: IndexReport, names: dict[str, str] | None = None) -> str:
    names = names or {}
    lines = [f"**{report.summary()}**"]
    lines += [f"- ⚠️ `{names.get(source, source)}`: {reason}" for source, reason in report.failed]
    return "\n".join(lines)


def stats_rows(engine: Engine) -> list[list]:
    stats = engine.stats()
    return [[LABELS[m], s["rows"], s["dim"], s["weights"], s["collection"]] for m, s in stats["models"].items()]
