"""Evaluate from the index (issue 21): a folder the running builds indexed is scored from the stored
vectors, with no model run; only images the index lacks are embedded."""
from __future__ import annotations

import shutil

import pytest

from searchcore.evaluation.evaluate import labelled_folders
from tests.conftest import labelled_folder


def test_an_indexed_folder_is_scored_from_the_index_and_only_the_rest_is_embedded(engine, tmp_path):
    labelled = labelled_folder(tmp_path / "set", classes=3, per_class=4)
    engine.index([sorted(labelled.iterdir())[1]])  # one class of three, not the first
    partly = engine.evaluate(labelled)
    assert (partly.images, partly.from_index) == (12, 4) and partly.stages["inference"] > 0
    engine.index([labelled])
    shutil.rmtree(engine.settings.evaluations_dir)  # no kept vectors of the last evaluation to answer
    whole = engine.evaluate(labelled)
    # before: all 12 were decoded and run through both models again
    assert (whole.images, whole.from_index, whole.cached) == (12, 12, False)
    assert "inference" not in whole.stages and "decode" not in whole.stages, whole.stages
    for mode, scores in whole.scores.items():  # the stored vectors are the ones the models give
        assert scores == pytest.approx(partly.scores[mode], abs=1e-6), mode
    # the queries in the files' order whatever the index holds: the seeded interval is the same
    assert whole.verdict.interval == pytest.approx(partly.verdict.interval, abs=1e-9)


def test_a_folder_of_one_class_or_none_gets_a_clear_message(engine, tmp_path):
    one = labelled_folder(tmp_path / "one", classes=1, per_class=3)
    with pytest.raises(ValueError, match=r"one holds 1 class \(\w+\); an evaluation needs two or more"):
        engine.evaluate(one)
    (tmp_path / "flat").mkdir()
    shutil.copy(next(one.rglob("*.jpg")), tmp_path / "flat" / "a.jpg")
    with pytest.raises(ValueError, match=r"flat holds 0 image\(s\) that could be read in class folders"):
        engine.evaluate(tmp_path / "flat")


def test_the_labelled_folders_under_the_roots_are_found_without_following_links(tmp_path):
    labelled_folder(tmp_path / "root" / "sets" / "corel", classes=2, per_class=1)
    labelled_folder(tmp_path / "outside" / "secret", classes=2, per_class=1)
    flat = tmp_path / "root" / "flat"
    flat.mkdir()
    shutil.copy(next((tmp_path / "outside").rglob("*.jpg")), flat / "a.jpg")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    assert labelled_folders([tmp_path / "root"]) == [tmp_path / "root" / "sets" / "corel"]
    assert labelled_folders([tmp_path / "root"], depth=1) == []  # two levels down: past a depth of one
    assert labelled_folders([tmp_path / "missing"]) == []
