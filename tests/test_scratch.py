"""Folders the app writes to keep only their newest entries: they never grow with use (issue 19, item 9)."""
from __future__ import annotations

import base64
import os

import numpy as np

from searchcore.evaluation.evaluate import Embeddings, EmbeddingsFile
from searchcore.web.scratch import Scratch
from searchcore.web.upload import save_data_url


def test_answer_files_keep_only_the_newest_of_their_kind(tmp_path):
    scratch = Scratch("failures", root=tmp_path, keep=3)
    made = []
    for n in range(10):
        path = scratch.new("index-failures.tsv")
        path.write_text(str(n))
        os.utime(path.parent, (n, n))  # distinct ages, oldest first
        made.append(path)
    assert all(p.name == "index-failures.tsv" for p in made)
    assert sorted(p.read_text() for p in (tmp_path / "failures").glob("*/*")) == ["7", "8", "9"]


def test_pasted_images_and_kept_evaluations_are_bounded(tmp_path):
    for n in range(80):
        save_data_url("data:image/png;base64," + base64.b64encode(b"pasted %d" % n).decode(), tmp_path / "pasted")
    assert len(list((tmp_path / "pasted").iterdir())) == 64
    kept = EmbeddingsFile(tmp_path / "evaluations", kept=4)
    first = tmp_path / "evaluations" / "first.npz"
    vectors = {"resnet50": np.zeros((1, 4), np.float32)}
    kept.save(first, Embeddings(["a.jpg"], ["0" * 64], ["x"], vectors, []))
    for n in range(6):
        os.utime(first, (10**9 + n, 10**9 + n))  # older than every one below, unless used meanwhile
        assert kept.load(first, ["resnet50"]) is not None  # used: the last to go
        kept.save(tmp_path / "evaluations" / f"{n}.npz", Embeddings(["b.jpg"], ["1" * 64], ["y"], vectors, []))
    assert sorted(p.name for p in (tmp_path / "evaluations").iterdir()) == ["3.npz", "4.npz", "5.npz", "first.npz"]


def test_answer_files_live_in_a_private_folder_of_the_process():
    """A fixed /tmp/searchcore-scratch could be made (or linked elsewhere) by another user first."""
    folder = Scratch("edited").new("edited.jpg").parent.parent.parent
    assert folder.name.startswith("searchcore-scratch-") and folder.stat().st_mode & 0o777 == 0o700
    assert not folder.is_symlink() and folder.stat().st_uid == os.getuid()
