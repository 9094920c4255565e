"""What the web app shows, as plain values for its components: galleries, captions, texts, tables.

Kept out of app.py so that app.py only wires components to these functions and the engine. Every
file name or path that reaches the page goes through `safe()` first.
"""
from __future__ import annotations

import html
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..config import MODEL_NAMES, MODEL_SPECS, SPECS
from ..encoding.manifest import ModelManifest
from ..evaluation import plots
from ..evaluation.evaluate import EvalReport
from ..files.decode import is_under, named_only
from ..index import IndexReport
from ..inspection.explain import Explanation
from ..inspection.maps import MapPoints
from ..retrieval.duplicates import Group
from ..retrieval.fusion import FUSED, FUSION_POOL, RRF, FusedHit
from ..retrieval.lists import ListName, OnlyIn, list_label
from ..retrieval.options import Rerank, check_top_k
from ..retrieval.search import HitScore, QueryResult
from ..similarity import l2_from_cosine
from ..storage.store import Hit

LABELS = {spec.name: spec.label for spec in MODEL_SPECS}
SIDE_BY_SIDE = "Side by side"
FUSED_MODE = "Fused"
FUSED_RRF_MODE = "Fused (RRF)"
MODES: dict[str, tuple[str, ...]] = {SIDE_BY_SIDE: MODEL_NAMES, **{s.label: (s.name,) for s in MODEL_SPECS},
                                     FUSED_MODE: MODEL_NAMES, FUSED_RRF_MODE: MODEL_NAMES}
RERANK_CHOICES = [("None", "none"), ("αQE", "qe"), ("DBA", "dba"), ("DBA + αQE", "dba+qe")]

FAILURES_SHOWN_PER_KIND = 5
MARKDOWN_SPECIAL = set("\\`*_[]<>|~")


def safe(text: str) -> str:
    """Text from a file name, made harmless for Markdown: control and invisible formatting characters
    (U+202E and the like) become visible `\\u202e` escapes, Markdown's special characters are escaped."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\\\u{ord(char):04x}")
        elif char in MARKDOWN_SPECIAL:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def plain(text: str) -> str:
    """The same escapes of invisible characters for plain-text places (captions), no Markdown escaping."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(text))


def check_mode(mode: object) -> tuple[str, ...]:
    """The models a mode shows; a ValueError naming the choices for anything else."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return MODES[mode]


def check_k(k: object) -> int:
    """Top k from a component or an API call: a whole number in range, else a ValueError."""
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    return check_top_k(k)


# The lists of hits the page shows, gallery by gallery: each model's, a fused one, and each model's hits
# no other found.
LISTS: tuple[ListName, ...] = (*MODEL_NAMES, FUSED, *(OnlyIn(name) for name in MODEL_NAMES))


def is_fused(mode: str) -> bool:
    return mode in (FUSED_MODE, FUSED_RRF_MODE)


def shown_lists(mode: str) -> tuple[ListName, ...]:
    """LISTS for this mode: the fused gallery holds the RRF list in Fused (RRF) mode."""
    return tuple(RRF if name == FUSED and mode == FUSED_RRF_MODE else name for name in LISTS)


def shown_hits(result: QueryResult, name: ListName, images: Mapping[int, Path]) -> list[tuple[int, Hit | FusedHit]]:
    """(rank, hit) for the hits of one list that have an image to show; ranks stay those of the full list."""
    return [(rank, h) for rank, h in result.ranked(name) if h.id in images]


def shared_marks(result: QueryResult) -> dict[int, str]:
    """A numbered mark (①, ②, …) per hit that every model found, numbered by the first model's ranks,
    so that the same image carries the same mark in every list."""
    lists = list(result.hits.values())
    if len(lists) < 2:
        return {}
    shared = set.intersection(*({h.id for h in hits} for hits in lists))
    order = [h.id for h in lists[0] if h.id in shared]
    return {i: circled(n + 1) for n, i in enumerate(order)}


def circled(number: int) -> str:
    """① … ㊿: Unicode has circled numbers up to 50, the largest k, so every rank has the same style of mark."""
    if not 1 <= number <= 50:
        raise ValueError(f"no circled number for {number}")
    return chr((0x2460 - 1, 0x3251 - 21, 0x32B1 - 36)[(number > 20) + (number > 35)] + number)


def caption(rank: int, hit: Hit | FusedHit, mark: str = "") -> str:
    """`#3 ② cos 0.915 · elephants/0516.jpg · L2 0.412`: the rank, the cosine and what the hit is first (a
    phone shows one line of it), then its L2 distance, three decimals; a fused hit also says its rank in
    each model's list (`ResNet50 #2 · VGG16 —`: not in that list)."""
    ranks = "".join(f" · {LABELS.get(m, m)} {f'#{r}' if r else '—'}" for m, r in hit.ranks.items()) \
        if isinstance(hit, FusedHit) else ""
    return (f"#{rank}{' ' + mark if mark else ''} cos {hit.cosine:.3f} · {plain(short_path(hit.path))} · "
            f"L2 {l2_from_cosine(hit.cosine):.3f}{ranks}")


def gallery(result: QueryResult, name: ListName, images: Mapping[int, Path]) -> list[tuple[str, str]]:
    """(image, caption) pairs of one list, in rank order; shared hits carry their mark."""
    marks = shared_marks(result) if name not in (FUSED, RRF) else {}
    return [(str(images[h.id]), caption(r, h, marks.get(h.id, ""))) for r, h in shown_hits(result, name, images)]


def agreement_text(result: QueryResult) -> str:
    """The agreement in plain words: how many hits both lists hold, then each measure with what it means."""
    if not result.agreement:
        return ""
    pair, a = next(iter(result.agreement.items()))
    first, second = (LABELS[m] for m in pair)
    if not a.shared:
        return f"{first} and {second} share **none** of their top {a.k}: each list below is all its own."
    tau = ("needs 2 shared hits" if a.kendall_tau is None
           else f"{a.kendall_tau:.2f} (1: the same order, −1: reversed)")
    return (f"**{a.shared} of {a.k} in both lists** (marked ①, ②, … in both). Overlap {a.overlap_at_k:.2f}: the share "
            f"of the top {a.k} that both found · Jaccard {a.jaccard:.2f}: shared hits over all different hits · "
            f"order of the shared hits (Kendall τ) {tau}")


PATH_KEYS = frozenset({"file", "query", "root", "source", "path"})


def short_path(path: str) -> str:
    """A file's folder and name, the most a public page shows of a server path."""
    where = Path(path)
    return f"{where.parent.name}/{where.name}" if where.parent.name else where.name


def for_public(value: object) -> object:
    """JSON with every path (under "file", "query", "root", "source", "path") cut to its folder and name."""
    if isinstance(value, dict):
        return {k: short_path(v) if k in PATH_KEYS and isinstance(v, str) else for_public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [for_public(v) for v in value]
    return value


def no_close_match(result: QueryResult) -> str:
    """A notice when no model found a close match: each model's best hit (the query itself left out) is
    below that model's close-match level; "" otherwise."""
    best = {m: max((h.cosine for h in hits if not result.is_self(h)), default=None) for m, hits in result.hits.items()}
    if not best or any(c is None or c >= SPECS[m].close_match for m, c in best.items()):
        return ""
    found = " and ".join(f"cos {c:.2f} ({LABELS[m]})" for m, c in best.items())
    levels = ", ".join(f"{LABELS[m]} {SPECS[m].close_match:.2f}" for m in best)
    return (f"\n\n**No close match in the index**: the best hits are at {found}, below the level where photos "
            f"of one class and of two are told apart best on Corel-1k ({levels}). They are shown anyway.")


def status_text(result: QueryResult, images: Mapping[int, Path]) -> str:
    if result.error:
        return f"⚠️ {safe(named_only(result.error, result.query))}"
    own = any(result.is_self(h) for hits in result.hits.values() for h in hits)
    text = f"Query {safe(Path(result.query).name)}" + (" — this very image is indexed (its own hit is shown)"
                                                        if own else "")
    if result.rerank != "none":
        text += f" — re-ranked with {Rerank(result.rerank).label} (cosines to the re-ranked vectors)"
    if result.robust:
        text += " — also searched turned and mirrored (each hit's best cosine)"
    if result.regions:
        text += " — on the indexed images' regions (each image's best region)"
    hidden = {h.id for hits in result.hits.values() for h in hits if h.id not in images}
    text += f" — {len(hidden)} hit(s) not shown: file gone, changed, or outside the served folders" if hidden else ""
    plain_cosines = result.rerank == "none" and not result.regions  # the levels are those of the plain vectors
    return text + (no_close_match(result) if plain_cosines else "")


def startup_text(done: int, total: int, finished: bool, failure: str | None = None, note: str | None = None) -> str:
    """What the page says while the app indexes its folder at start-up (once it is over, only a note such
    as "that folder holds no photos")."""
    if failure:
        return f"⚠️ Indexing at start-up stopped: {safe(failure)}"
    if finished:
        return f"ℹ️ {safe(note)}" if note else ""
    if not total:
        return "Indexing at start-up: looking for images…"
    return (f"Indexing the photos: {done:,} of {total:,} done. Searches already cover the ones indexed so far; "
            f"the rest follow by themselves.")


def fetch_text(fetched: int, expected: int) -> str:
    """What the page says while the demo photos are fetched."""
    of = f" of {expected / 1e6:,.1f}" if expected else ""
    return f"Fetching the demo photos: {fetched / 1e6:,.1f}{of} MB…"


def robust_cost(turns_indexed: bool) -> str:
    """What the robust option costs a search, said beside it."""
    if turns_indexed:
        return "The turns are indexed: it costs one more search per model, not more model time."
    return "It runs each model five times (the photo, three turns and a mirror): a search takes several times longer."


MAX_GROUPS_SHOWN = 200


def shown_group(group: Group, images: Mapping[str, Path]) -> Group | None:
    """The group with only the members that have an image to show; None when fewer than two are left or
    its first image is not shown (the scores are to that image)."""
    members = [m for m in group.members if m.path in images]
    return Group(members) if len(members) > 1 and members[0] == group.members[0] else None


def duplicates_summary(groups: Sequence[Group], scoring: str, threshold: float) -> str:
    """How many groups and images were found, by what and at which threshold (or that none were)."""
    scored_by = LABELS.get(scoring, "the mean cosine of the models")
    if not groups:
        return f"No near-duplicates at {threshold:.3f} ({scored_by}): a lower threshold finds more."
    images = sum(len(g.members) for g in groups)
    return (f"**{len(groups)} group(s)** of near-duplicates, {images} images, scored by {scored_by} at "
            f"{threshold:.3f}, largest first (at most {MAX_GROUPS_SHOWN}); under each photo its score to "
            "the group's first.")


def duplicates_html(groups: Sequence[Group], images: Mapping[str, Path]) -> str:
    """One row of thumbnails per group, with each member's folder, name and score."""
    rows = []
    for n, group in enumerate(groups, 1):
        figures = "".join(
            f'<figure><img src="gradio_api/file={html.escape(str(images[m.path]))}" '
            f'alt="{html.escape(plain(short_path(m.path)))}"><figcaption>{m.similarity:.3f} · '
            f'{html.escape(plain(short_path(m.path)))}</figcaption></figure>' for m in group.members)
        rows.append(f'<div class="dup-row"><div class="dup-n">{n}</div>{figures}</div>')
    return "".join(rows)


ALL_FOLDERS = "All indexed photos"


def folder_choices(folders: Iterable[str], bases: Sequence[Path]) -> dict[str, str]:
    """Label -> folder, for each folder of indexed images under one of `bases` (the roots, the uploads)
    and each folder between it and its base. A label is the path from the base's own name down
    ("images/corel/elephants"; with the name of the folder above it when two bases share a name), so
    that no server path shows; sorted by label."""
    names = [b.name for b in bases]
    base_label = {b: f"{b.parent.name}/{b.name}" if names.count(b.name) > 1 else b.name for b in bases}
    choices = {}
    for folder in map(Path, folders):
        base = next((b for b in bases if folder == b or b in folder.parents), None)
        if base is None:
            continue
        for above in (folder, *folder.parents):
            choices[str(Path(base_label[base]) / above.relative_to(base))] = str(above)
            if above == base:
                break
    return dict(sorted(choices.items()))


def intent_info(regions_indexed: bool) -> str:
    """What each intent finds, and what it sets, said under the choice."""
    crops = ", cropped" if regions_indexed else ""
    return ("Similar photos: the same kind of scene (re-ranked with DBA+αQE). The same photo, edited: a copy "
            f"turned, mirrored{crops}, re-saved or recoloured (each model runs on five turns of your photo). "
            "Advanced shows the options each sets.")


def error_text(message: str) -> str:
    return f"⚠️ {safe(message)}"


@dataclass(frozen=True)
class Selection:
    id: int
    path: str
    sha256: str
    text: str
    made_on: str = ""  # the search it was made on: a later search forgets it, that search's own follow-up not


def hit_details(hit: Hit | FusedHit, scores: Mapping[str, HitScore], made_on: str = "", public: bool = False
                ) -> Selection:
    """The selected hit: path (folder and name on a public page), id, and its rank and exact distance
    under each model."""
    path = short_path(hit.path) if public else hit.path
    lines = [f"**{safe(Path(hit.path).name)}**", f"- path: {safe(path)}", f"- id: {hit.id}"]
    for model, score in scores.items():
        if score.cosine is None:
            lines.append(f"- {LABELS[model]}: not indexed")
            continue
        rank = f"#{score.rank}" if score.rank else "not in its list"
        lines.append(f"- {LABELS[model]}: {rank} · L2 {l2_from_cosine(score.cosine):.3f} · "
                     f"cosine {score.cosine:.3f}")
    return Selection(id=hit.id, path=hit.path, sha256=hit.sha256, text="\n".join(lines), made_on=made_on)


def explanation_gallery(explained: Mapping[str, Explanation]) -> list[tuple[Image.Image, str]]:
    """Per model, the query and the hit with their heat laid over them: where the similarity comes from."""
    shown = []
    for model, e in explained.items():
        shown.append((plots.heat_overlay(e.query_pixels, e.similarity.query_heat, e.query_size),
                      f"{LABELS[model]} · query"))
        shown.append((plots.heat_overlay(e.hit_pixels, e.similarity.hit_heat, e.hit_size),
                      f"{LABELS[model]} · hit · cos {e.similarity.cosine:.3f}"))
    return shown


EVAL_COLUMNS = ("mAP", "P@1", "P@10", "P@20", "R@1", "R@5", "R@10")  # mAP first: on a phone it stays in view


def eval_table_headers() -> list[str]:
    return ["mode", *EVAL_COLUMNS]


def eval_table(report: EvalReport, labels: Mapping[str, str]) -> list[list[str]]:
    """One row per mode (see eval_table_headers), three decimals as the CLI prints them, the best value
    of each column in bold (markdown cells)."""
    best = {c: max(round(scores[c], 3) for scores in report.scores.values()) for c in EVAL_COLUMNS}
    return [[labels.get(mode, mode), *(f"**{scores[c]:.3f}**" if round(scores[c], 3) == best[c] else f"{scores[c]:.3f}"
                                       for c in EVAL_COLUMNS)]
            for mode, scores in report.scores.items()]


def eval_summary(report: EvalReport, public: bool = False) -> str:
    """What was evaluated (a public page names the folder only), how long it took and where the time went."""
    reused = ("embeddings reused from the last evaluation of these files" if report.cached else
              f"{report.from_index:,} read from the index, {report.images - report.from_index:,} embedded now")
    stages = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in report.stages.items())
    verdict = f"**{safe(report.verdict.sentence(report.images, report.labels()))}**\n\n" if report.verdict else ""
    text = verdict + (f"**{report.images:,} images in {len(report.classes)} classes** from "
            f"{safe(Path(report.root).name if public else report.root)} — {reused}; "
            f"{report.seconds:.1f} s ({stages}). Each image queries all the others; R@k: a query with at least "
            f"one image of its class in the first k. Fused ranks the union of each model's top "
            f"{FUSION_POOL} by mean cosine, as the Search tab does.")
    if report.failed:
        text += f"\n\n⚠️ {len(report.failed)} file(s) could not be read: " + ", ".join(
            safe(Path(f.source).name) for f in report.failed[:FAILURES_SHOWN_PER_KIND])
    return text


# matplotlib's tab20 and tab20b: 40 colours, so 10 to 40 classes each get their own
MAP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
               "#dbdb8d", "#9edae5", "#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#637939", "#8ca252", "#b5cf6b",
               "#cedb9c", "#8c6d31", "#bd9e39", "#e7ba52", "#e7cb94", "#843c39", "#ad494a", "#d6616b", "#e7969c",
               "#7b4173", "#a55194", "#ce6dbd", "#de9ed6")
MAP_PX = 420


def map_svg(points: MapPoints, label: str) -> str:
    """One model's map as an SVG of points coloured by class (maps.class_groups), each carrying its id (for the
    hover preview and a click) and its folder and file name; no path or SHA-256 reaches the page."""
    groups = list(dict.fromkeys(sorted(points.groups)))
    colour = {g: MAP_COLOURS[n % len(MAP_COLOURS)] for n, g in enumerate(groups)}
    xy = np.asarray(points.xy, float).reshape(-1, 2)
    low, span = (xy.min(axis=0), np.ptp(xy, axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
    scaled = 8 + (xy - low) / np.where(span > 0, span, 1) * (MAP_PX - 16)
    circles = "".join(
        f'<circle cx="{x:.1f}" cy="{MAP_PX - y:.1f}" r="3.5" fill="{colour[g]}" data-id="{i}" '
        f'data-n="{html.escape(plain(short_path(p)), quote=True)}"></circle>'
        for (x, y), g, i, p in zip(scaled, points.groups, points.ids, points.paths))
    sampled = f" (a sample of {len(points.ids):,} of {points.total:,})" if points.total > len(points.ids) else ""
    legend = "".join(f'<span class="map-key" title="{html.escape(plain(g), quote=True)}"><i style="background:'
                     f'{colour[g]}"></i>{html.escape(plain(g))}</span>' for g in groups)
    return (f'<div class="map"><div class="map-title">{html.escape(label)} · {points.method}{sampled}</div>'
            f'<svg viewBox="0 0 {MAP_PX} {MAP_PX}" role="img" aria-label="{html.escape(label)} map">{circles}</svg>'
            f'<div class="map-legend">{legend}</div></div>')


ROBUST_OPTIONS = {"plain": "plain", "robust": "robust query", "dba+qe": "DBA+αQE"}


def robustness_rows(ranks: Mapping[str, Mapping[str, int | None]]) -> list[list]:
    """One row per list (each model, Fused, Fused (RRF)), one column per option: the original's rank."""
    lists = list(next(iter(ranks.values())))
    return [[list_label(name), *(f"#{ranks[o][name]}" if ranks[o][name] else "not in the top 50"
                                       for o in ROBUST_OPTIONS)] for name in lists]


def under_roots(folder: str, roots: Sequence[Path]) -> Path:
    """The folder, resolved, if it lies under one of the operator's roots; otherwise a ValueError that
    says why in one line (also for names too long for the file system, NUL bytes, link loops)."""
    shown = safe(folder if len(folder) <= 120 else folder[:60] + "…" + folder[-40:])
    try:
        path = Path(folder).expanduser().resolve()
        is_dir = path.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"{shown} is not a usable folder name ({reason})") from None
    if not is_under(path, roots):
        allowed = ", ".join(safe(str(r)) for r in roots) or "none configured (SEARCHCORE_INDEX_ROOTS)"
        raise ValueError(f"{shown} is not under an allowed folder: {allowed}")
    if not is_dir:
        raise ValueError(f"{shown} is not a folder on the server")
    return path


UPKEEP_NOTE = ("The new photos are searchable now. Their DBA vectors follow in a moment; until then a "
               "DBA re-ranking runs on the plain vectors, and the status line says so.")
UPKEEP_DONE = "The new photos are searchable, and their DBA vectors are current."
UPKEEP_BEHIND = ("⚠️ The DBA vectors are not current: another index run is under way, or their step failed "
                 "(the app's log says why). Until they are, DBA re-rankings run on the plain vectors.")


def settled_summary(summary: str, dba_current: bool) -> str:
    """An index summary once the run's upkeep is over: the note that the DBA vectors follow becomes that
    they are current, or that they are not (and what DBA searches do meanwhile)."""
    done = UPKEEP_DONE if dba_current else UPKEEP_BEHIND
    return summary.replace(UPKEEP_NOTE, done)


def index_summary(report: IndexReport, names: Mapping[str, str] | None = None) -> str:
    """The counts (and, when the run added photos, that their DBA vectors follow), then the failures
    grouped by kind: the first few of each, and how many more."""
    names = names or {}
    lines = [f"**{safe(report.summary())}**"]
    if report.new_ids:
        lines.append(UPKEEP_NOTE)
    for kind, failures in report.failures_by_kind().items():
        lines.append(f"- ⚠️ {safe(kind)}: {len(failures)} file(s)")
        lines += [f"    - {safe(names.get(f.source, f.source))}: {safe(f.reason)}"
                  for f in failures[:FAILURES_SHOWN_PER_KIND]]
        if len(failures) > FAILURES_SHOWN_PER_KIND:
            lines.append(f"    - … and {len(failures) - FAILURES_SHOWN_PER_KIND} more (see the full list)")
    return "\n".join(lines)


def failure_list(report: IndexReport, names: Mapping[str, str] | None = None) -> str:
    """Every failure, one per line (`file<TAB>kind<TAB>reason`), for the downloadable list."""
    names = names or {}
    return "".join(f"{plain(names.get(f.source, f.source))}\t{f.kind}\t{plain(f.reason)}{os.linesep}"
                   for f in report.failed)


STATS_HEADERS = ["model", "images", "vector size", "precision", "ImageNet weights from", "Milvus collection"]


def stats_rows(stats: Mapping) -> list[list]:
    """The Engine's stats as table rows, one per model."""
    return [[s["label"], s["rows"], s["dim"], s["precision"], s["weights_package"] or s["weights"], s["collection"]]
            for s in stats["models"].values()]


def precision_text(precision: str, manifests: Mapping[str, ModelManifest]) -> str:
    """Which builds of the models this app runs (manifests by model label)."""
    if precision == "int8":
        cosines = ", ".join(f"{label} {m.versions.get('int8_median_cosine_to_fp32', float('nan')):.3f}"
                            for label, m in manifests.items())
        return ("The models run **int8**: statically quantized from fp32, about 3× faster on a CPU; median "
                f"cosine of their vectors to fp32's on the sample photos: {cosines}.")
    return "The models run **fp32**, the exported weights as they are."


def roots_text(roots: Sequence[Path], names: Mapping[Path, str]) -> str:
    """The allowed folders in plain words: a known folder by its name, the others by their path."""
    return ", ".join(names.get(root) or safe(str(root)) for root in roots)


def round_robin(rows: Sequence[dict], key) -> list[dict]:
    """Rows reordered one group after another (first of each group, then second of each, …)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    ordered = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        ordered += [g[i] for g in groups.values() if i < len(g)]
    return ordered
