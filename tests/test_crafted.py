"""Crafted input gets a clear answer, never a raw error (issue 19, item 7)."""
from __future__ import annotations

import io
import random
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

from searchcore.evaluation import plots
from searchcore.evaluation.evaluate import EvalReport
from searchcore.inspection.edits import apply_edit
from searchcore.retrieval.lists import Fusion, Ranking
from searchcore.retrieval.search import QueryResult
from searchcore.web.search_tab import Examples, SearchPage


def report_of(classes: list[str]) -> EvalReport:
    """An evaluation's report over these classes (scores made up: only the drawing is tested)."""
    rankings = {r.key: r for r in (Ranking("resnet50"), Ranking("vgg16"), Ranking(Fusion.MEAN))}
    rng = random.Random(0)
    return EvalReport(root="/x", images=10 * len(classes), models=["resnet50", "vgg16"], classes=classes,
                      scores={k: {"mAP": 0.5} for k in rankings}, rankings=rankings,
                      curves={k: [0.9, 0.8] for k in rankings},
                      ap_per_class={k: {c: rng.random() for c in classes} for k in rankings}, jaccard=[0.5],
                      disagreements=[], failed=[], stages={}, cached=False, seconds=1.0)


@pytest.mark.parametrize("classes", [[f"class {n}" for n in range(120)],  # "Image size exceeds WebP limit"
                                     ["$\\badcommand{$", "cost $5", "plain"]])  # a mathtext parse error
def test_any_number_and_name_of_classes_draws_a_picture_of_a_sane_size(classes):
    report = report_of(classes)
    for name, figure in plots.figures(report, report.labels()).items():
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=100)
        width, height = Image.open(out).size
        assert width <= 2400 and height <= 2400, (name, width, height)


def test_an_edit_amount_out_of_its_range_is_named_with_the_range():
    photo = Image.new("RGB", (64, 48), (200, 30, 30))
    for kind, amount, said in (("crop", -180, "crop: the share of the area kept must be from 0.1 to 1.0, not -180"),
                               ("rotate", float("nan"), "rotate: the degrees must be from -180 to 180, not nan"),
                               ("mirror", 2, "the edit 'mirror' takes no amount")):
        with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)")):
            apply_edit(photo, kind, random.Random(0), amount)
    assert Image.open(io.BytesIO(apply_edit(photo, "crop", random.Random(0), 0.5))).size == (45, 34)


def test_a_click_on_an_example_or_a_hit_that_is_not_there_selects_nothing():
    examples = Examples(components=[gr.Image()], samples=[["a.jpg"]], type="values")
    assert [examples.preprocess(i) for i in (10**6, -1, "0", 0)] == [None, None, None, ["a.jpg"]]
    handler = SearchPage(SimpleNamespace(settings=SimpleNamespace(public=False)), None, []).select(0)
    state = (QueryResult(query="q.jpg", id=-1, hits={"resnet50": []}), {}, ["resnet50"], "token")
    assert handler(state, SimpleNamespace(index=10**6, value={"caption": "x"})) == {}
