"""What the page shows, from real search results: captions, marks, and which files may be served."""
from __future__ import annotations

import re

from searchcore import views
from searchcore.search import QueryResult
from searchcore.store import Hit


def hit(i: int, path: str, l2: float) -> Hit:
    return Hit(id=i, path=path, sha256="0" * 64, l2=l2, cosine=1 - l2 * l2 / 2)


def test_captions_mark_shared_hits_and_hide_unservable_files(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(b"x")
    (outside / "c.jpg").write_bytes(b"x")
    (root / "link.jpg").symlink_to(outside / "c.jpg")
    result = QueryResult(query="q.jpg", id=1, hits={
        "resnet50": [hit(1, str(root / "a.jpg"), 0.0), hit(2, str(root / "link.jpg"), 0.5), hit(3, str(root / "b.jpg"), 0.7)],
        "vgg16": [hit(3, str(root / "b.jpg"), 0.3), hit(1, str(root / "a.jpg"), 0.4), hit(4, str(root / "gone.jpg"), 0.6)]})
    resnet = views.gallery(result, "resnet50", [root])
    assert resnet == [(str(root / "a.jpg"), "#1 · L2 0.00 · both"), (str(root / "b.jpg"), "#3 · L2 0.70 · both")]
    assert views.gallery(result, "vgg16", [root])[0] == (str(root / "b.jpg"), "#1 · L2 0.30 · both")
    assert re.search(r"2 hit\(s\) not shown", views.status_text(result, [root]))
    assert "this very image is indexed" in views.status_text(result, [root])
