"""Pictures of results, as matplotlib figures and Pillow images: the evaluation's plots, the mosaic of
queries where the models disagree, and heatmaps laid over photos. Only drawing: every number and
every file comes in as an argument."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure  # figures made without pyplot: nothing kept in a global registry
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..retrieval.options import Rerank
from .evaluate import EvalReport

COLOURS = {"resnet50": "#1f77b4", "vgg16": "#ff7f0e", "fused": "#2ca02c", "rrf": "#9467bd"}
RELEVANT, NOT_RELEVANT = (44, 160, 44), (214, 39, 40)
CELL = 112
CAPTION_PX = 20  # the mosaic's captions: about 19 px on a desktop screen, where the page shrinks it a little
MAX_CLASSES_SHOWN = 40  # the AP-per-class bars: more would not fit a picture (WebP stops at 16,383 px)


def _text(text: str) -> str:
    """A folder name as matplotlib's literal text: a `$` would start math mode (and fail to parse)."""
    return str(text).replace("$", r"\$")


def _colour(report: EvalReport, mode: str, n: int) -> str:
    reranked = report.rankings[mode].rerank is not Rerank.NONE
    return COLOURS.get(mode, "#d62728" if reranked else colormaps["tab10"](n % 10))


def precision_curve(report: EvalReport, labels: Mapping[str, str]) -> Figure:
    """Mean P@k for k = 1..50, one line per mode."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    for n, mode in enumerate(report.headline_modes()):
        curve = report.curves[mode]
        ax.plot(range(1, len(curve) + 1), curve, label=_text(labels.get(mode, mode)), color=_colour(report, mode, n),
                linestyle="-" if mode in COLOURS else "--")
    low = min((min(report.curves[m]) for m in report.headline_modes() if report.curves[m]), default=0.0)
    ax.set(xlabel="k", ylabel="mean P@k", title=f"{report.images:,} queries", ylim=(max(0.0, low - 0.05), 1.0))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def shown_classes(report: EvalReport, modes: list[str]) -> list[str]:
    """Every class, or with more than MAX_CLASSES_SHOWN the ones where the modes' APs differ most."""
    if len(report.classes) <= MAX_CLASSES_SHOWN:
        return report.classes
    spread = {c: np.ptp([report.ap_per_class[m][c] for m in modes]) for c in report.classes}
    kept = set(sorted(report.classes, key=lambda c: -spread[c])[:MAX_CLASSES_SHOWN])
    return [c for c in report.classes if c in kept]


def ap_per_class(report: EvalReport, labels: Mapping[str, str]) -> Figure:
    """Mean AP per class, as grouped bars (one bar per mode)."""
    modes = report.headline_modes()
    classes = shown_classes(report, modes)
    width = 0.8 / len(modes)
    fig = Figure(figsize=(min(24.0, max(6.4, 0.3 * len(classes) * len(modes))), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(classes))
    for n, mode in enumerate(modes):
        ax.bar(x + (n - (len(modes) - 1) / 2) * width, [report.ap_per_class[mode][c] for c in classes], width,
               label=_text(labels.get(mode, mode)), color=_colour(report, mode, n))
    ax.set_xticks(x, [_text(c) for c in classes], rotation=30, ha="right")
    ax.set(ylabel="mean AP", ylim=(0, 1.05))
    if len(classes) < len(report.classes):
        ax.set_title(f"the {len(classes)} of {len(report.classes)} classes where they differ most", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncols=len(modes), loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    return fig


def jaccard_histogram(report: EvalReport, pair: str) -> Figure:
    """How much the two models' top 10 overlap, query by query."""
    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.subplots()
    values = np.asarray(report.jaccard)
    ax.hist(values, bins=np.linspace(0, 1, 21), color="#7f7f7f", edgecolor="white")
    if len(values):
        ax.axvline(float(np.median(values)), color="black", linestyle="--",
                   label=f"median {np.median(values):.2f}")
        ax.legend()
    ax.set(xlabel=f"Jaccard of the two top-10 lists ({pair})", ylabel="queries")
    return fig


def disagreement_mosaic(report: EvalReport, thumbnails: Mapping[str, Path], labels: Mapping[str, str]
                        ) -> Image.Image | None:
    """One row per query where the models disagree most: the query, then each model's first hits,
    framed green when of the query's class and red when not."""
    if not report.disagreements:
        return None
    models = list(report.disagreements[0].top)
    per_model = len(report.disagreements[0].top[models[0]])
    header, gap, label_h = 32, 16, 30
    width = CELL * (1 + per_model * len(models)) + gap * len(models)
    height = header + len(report.disagreements) * (CELL + label_h)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=CAPTION_PX)
    x = CELL + gap
    draw.text((4, 4), "query", fill="black", font=font)
    for model in models:
        draw.text((x + 4, 4), f"{labels.get(model, model)}: first {per_model}", fill="black", font=font)
        x += CELL * per_model + gap
    for row, case in enumerate(report.disagreements):
        y = header + row * (CELL + label_h)  # each row's caption above its pictures
        aps = " · ".join(f"{labels.get(m, m)} AP {ap:.2f}" for m, ap in case.ap.items())
        draw.text((4, y + 3), f"{case.label}: {aps}", fill="black", font=font)
        y += label_h
        _paste(canvas, thumbnails.get(case.file), 0, y, None)
        x = CELL + gap
        for model in models:
            for hit in case.top[model]:
                _paste(canvas, thumbnails.get(hit.file), x, y, RELEVANT if hit.relevant else NOT_RELEVANT)
                x += CELL
            x += gap
    return canvas


def _paste(canvas: Image.Image, thumbnail: Path | None, x: int, y: int, frame: tuple | None) -> None:
    draw = ImageDraw.Draw(canvas)
    if thumbnail is None:
        draw.rectangle((x + 2, y + 2, x + CELL - 3, y + CELL - 3), outline="grey")
        return
    with Image.open(thumbnail) as image:
        canvas.paste(ImageOps.fit(image.convert("RGB"), (CELL - 6, CELL - 6)), (x + 3, y + 3))
    if frame:
        draw.rectangle((x + 1, y + 1, x + CELL - 2, y + CELL - 2), outline=frame, width=3)


def heat_overlay(pixels: np.ndarray, heat: np.ndarray, size: tuple[int, int] | None = None, alpha: float = 0.5,
                 ) -> Image.Image:
    """A coarse heat grid (h x w, any scale) stretched over an HxWx3 model input in the 'jet' colours,
    then given back the photo's own proportions (`size`, width x height) at the input's width."""
    peak = float(heat.max())
    normed = heat / peak if peak > 0 else heat
    grid = Image.fromarray(np.uint8(255 * np.clip(normed, 0, 1)))
    stretched = np.asarray(grid.resize(pixels.shape[1::-1], Image.Resampling.BILINEAR)) / 255.0
    coloured = colormaps["jet"](stretched)[..., :3] * 255
    overlay = Image.fromarray(np.uint8((1 - alpha) * pixels + alpha * coloured))
    if size:
        width = pixels.shape[1]
        overlay = overlay.resize((width, max(1, round(width * size[1] / size[0]))), Image.Resampling.BILINEAR)
    return overlay


def figures(report: EvalReport, labels: Mapping[str, str]) -> dict[str, Figure]:
    """The evaluation's plots by file stem."""
    shown = {}
    shown["precision-at-k"] = precision_curve(report, labels)
    shown["ap-per-class"] = ap_per_class(report, labels)
    if report.jaccard:
        shown["jaccard-at-10"] = jaccard_histogram(report, " vs ".join(labels.get(m, m) for m in report.models[:2]))
    return shown


def write_all(report: EvalReport, thumbnails: Mapping[str, Path], labels: Mapping[str, str], folder: Path
              ) -> list[Path]:
    """Every plot and the disagreement mosaic as PNG files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures(report, labels).items():
        fig.savefig(folder / f"{stem}.png", dpi=110)
        written.append(folder / f"{stem}.png")
    if mosaic := disagreement_mosaic(report, thumbnails, labels):
        mosaic.save(folder / "disagreements.png")
        written.append(folder / "disagreements.png")
    return written
