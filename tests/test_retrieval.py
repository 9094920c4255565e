"""Retrieval quality on real photos: the proof that weights and preprocessing are right."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import COREL, PHOTOS, SAMPLES, run_cli


def test_two_crops_of_one_photo_are_nearest_each_other(engine, tmp_path):
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir(), right.mkdir()
    for name in PHOTOS:
        image = Image.open(SAMPLES / name).convert("RGB")
        w, h = image.size
        image.crop((0, 0, int(w * 0.8), int(h * 0.85))).save(left / f"{name}.jpg", quality=90)
        image.crop((int(w * 0.2), int(h * 0.15), w, h)).save(right / f"{name}.jpg", quality=90)
    assert engine.index([left]).indexed == len(PHOTOS)
    results = engine.search_files(sorted(right.iterdir()), k=2)
    for query, result in zip(sorted(right.iterdir()), results):
        for model, hits in result.hits.items():
            assert hits[0].path == str(left / query.name), (model, query.name, hits[0].path)
            assert hits[0].cosine > hits[1].cosine
        assert result.fused[0].path == str(left / query.name)


# The single-model rows of the dataset's README (P@10, mAP); a correct export reproduces them to +-0.01.
REFERENCE = {"resnet50": (0.944, 0.839), "vgg16": (0.943, 0.842), "fused": (0.953, 0.863)}


@pytest.mark.skipif(not COREL.is_dir(), reason="needs ../shared/datasets/corel1k")
def test_corel1k_reproduces_the_reference_figures(cli_env):
    out = run_cli(cli_env, "eval", str(COREL), "--json", timeout=1800)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["images"], report["classes"], report["failed"]) == (1000, 10, [])
    for model, (p10, ap) in REFERENCE.items():
        scores = report["scores"][model]
        assert scores["P@10"] == pytest.approx(p10, abs=0.01), (model, scores)
        assert scores["mAP"] == pytest.approx(ap, abs=0.01), (model, scores)
        assert scores["P@1"] >= scores["P@10"] >= scores["P@20"]


def test_fused_scores_equal_the_exact_cosines_also_for_hits_one_model_missed(engine, photo_dir):
    assert engine.index([photo_dir]).indexed == len(PHOTOS)
    missed = 0
    for query in sorted(photo_dir.rglob("*.jpg")):
        result = engine.search_files([query], k=2)[0]
        for hit in result.fused:
            for model, cosine in hit.cosines.items():
                stored = engine.stores[model].vectors([hit.id])[hit.id]
                assert cosine == pytest.approx(float(stored @ result.vectors[model]), abs=1e-5), (model, hit)
                missed += hit.ranks[model] is None
            assert hit.cosine == pytest.approx(sum(hit.cosines.values()) / 2, abs=1e-6)
        assert [h.cosine for h in result.fused] == sorted((h.cosine for h in result.fused), reverse=True)
    assert missed > 0  # some fused hits were scored from stored vectors, not from a model's own list
