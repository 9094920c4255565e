"""What the page shows, from real search results: captions, marks, and which files may be served."""
from __future__ import annotations

import re

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore.files.decode import Failure, read_raw
from searchcore.files.shown import ShownFiles
from searchcore.index import IndexReport
from searchcore.inspection.maps import MapPoints, class_groups, project, sample_ids
from searchcore.retrieval.compare import agreement
from searchcore.retrieval.fusion import FusedHit
from searchcore.retrieval.lists import OnlyIn
from searchcore.retrieval.search import QueryResult
from searchcore.storage.store import Hit
from searchcore.web import views


def hit(i: int, path: str, l2: float) -> Hit:
    return Hit(id=i, path=path, sha256="0" * 64, l2=l2, cosine=1 - l2 * l2 / 2)


def test_captions_mark_shared_hits_and_leave_out_hits_without_an_image():
    result = QueryResult(query="q.jpg", id=1, hits={
        "resnet50": [hit(1, "/r/a.jpg", 0.0), hit(2, "/r/link.jpg", 0.5), hit(3, "/r/b.jpg", 0.7)],
        "vgg16": [hit(3, "/r/b.jpg", 0.3), hit(1, "/r/a.jpg", 0.4), hit(4, "/r/gone.jpg", 0.6)]})
    images = {1: Path("/shown/1.webp"), 3: Path("/shown/3.webp")}  # 2 and 4 had no image to show
    resnet = views.gallery(result, "resnet50", images)
    assert resnet == [("/shown/1.webp", "#1 ① cos 1.000 · r/a.jpg · L2 0.000"),
                      ("/shown/3.webp", "#3 ② cos 0.755 · r/b.jpg · L2 0.700")]  # marks follow ResNet50's ranks
    assert views.gallery(result, "vgg16", images)[0] == ("/shown/3.webp", "#1 ② cos 0.955 · r/b.jpg · L2 0.300")
    assert views.gallery(result, OnlyIn("resnet50"), {**images, 2: Path("/shown/2.webp")}) == [
        ("/shown/2.webp", "#2 cos 0.875 · r/link.jpg · L2 0.500")]  # its own rank, no mark
    assert result.ranked(OnlyIn("vgg16")) == [(3, result.hits["vgg16"][2])]
    assert re.search(r"2 hit\(s\) not shown", views.status_text(result, images))
    assert "this very image is indexed" in views.status_text(result, images)


def test_file_names_are_escaped_before_they_reach_the_page():
    name = "evil\u202egpj.exe`*[x](http://a)\n.jpg"
    shown = views.safe(name)
    assert "\u202e" not in shown and "\n" not in shown and "\\\\u202e" in shown
    assert "\\`" in shown and "\\[" in shown
    result = QueryResult(query=f"/up/{name}", id=1, hits={}, error=None)
    assert "\u202e" not in views.status_text(result, {})
    report = IndexReport(failed=[Failure(f"/r/{name}", "not an image", "not an image file Pillow can read")])
    assert "\u202e" not in views.index_summary(report) and "\u202e" not in views.failure_list(report)


def test_many_failures_are_grouped_by_kind_with_the_full_list_apart():
    failed = [Failure(f"/r/{i}.jpg", "not an image", "not an image file Pillow can read") for i in range(1000)]
    failed += [Failure("/r/cut.jpg", "broken or truncated", "image data is broken or truncated (x)")]
    report = IndexReport(failed=failed)
    summary = views.index_summary(report)
    assert len(summary) < 2000, len(summary)
    assert "not an image: 1000 file(s)" in summary and "and 995 more" in summary
    assert "broken or truncated: 1 file(s)" in summary and "cut.jpg" in summary
    assert views.failure_list(report).count("\n") == 1001


def test_an_index_summary_says_the_dba_vectors_follow_only_when_the_run_added_photos():
    assert views.UPKEEP_NOTE in views.index_summary(IndexReport(indexed=1, new_ids={7}))
    assert views.UPKEEP_NOTE not in views.index_summary(IndexReport(already=3))


def test_a_settled_summary_says_whether_the_dba_vectors_are_current():
    summary = views.index_summary(IndexReport(indexed=1, new_ids={7}))
    current = views.settled_summary(summary, True)
    assert views.UPKEEP_NOTE not in current and views.UPKEEP_DONE in current and "indexed 1" in current
    behind = views.settled_summary(summary, False)
    assert views.UPKEEP_NOTE not in behind and views.UPKEEP_BEHIND in behind and "indexed 1" in behind


@pytest.mark.parametrize("mode", [None, "", "none", 3])
def test_bad_modes_are_refused_by_name(mode):
    with pytest.raises(ValueError, match="mode must be one of Side by side, ResNet50, VGG16, Fused"):
        views.check_mode(mode)


@pytest.mark.parametrize("k", [0, -1, 1001, 2.5, None, "8", True])
def test_bad_top_k_is_refused(k):
    with pytest.raises(ValueError, match="top k must be a whole number from 1 to 1000"):
        views.check_k(k)


def test_long_or_odd_folder_names_get_one_clear_line(tmp_path):
    for folder, reason in (("x" * 300, "File name too long"), ("a\0b", "null"), (str(tmp_path), "not under")):
        with pytest.raises(ValueError, match=reason):
            views.under_roots(folder, [tmp_path / "root"])


def test_shown_files_are_copies_of_unchanged_images_under_the_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(root / "a.jpg")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(outside / "b.jpg")
    (root / "c.jpg").symlink_to(outside / "b.jpg")
    shown = ShownFiles(tmp_path / "shown", [root], 50_000_000)
    a, b = read_raw(root / "a.jpg"), read_raw(outside / "b.jpg")
    thumb = shown.thumbnail(str(root / "a.jpg"), a.sha256)
    assert thumb.parent == tmp_path / "shown" / "thumbs" and Image.open(thumb).size == (256, 192)
    assert shown.original(str(root / "a.jpg"), a.sha256).read_bytes() == a.data
    assert shown.thumbnail(str(root / "c.jpg"), b.sha256) is None  # a link out of the roots
    assert shown.thumbnail(str(root / "a.jpg"), "0" * 64) is None  # changed since it was indexed
    assert shown.original(str(root / "gone.jpg"), a.sha256) is None
    assert sorted(p.name for p in (tmp_path / "shown").rglob("*") if p.is_file()) == sorted(["a.jpg", f"{a.sha256}.jpg"])


def test_examples_come_from_every_folder_in_turn():
    rows = [{"path": f"/i/{folder}/{n}.jpg"} for folder in ("a", "b", "c") for n in range(3)]
    ordered = views.round_robin(rows, key=lambda r: Path(r["path"]).parent.name)
    assert [Path(r["path"]).parent.name for r in ordered[:6]] == ["a", "b", "c", "a", "b", "c"]
    assert sorted(r["path"] for r in ordered) == sorted(r["path"] for r in rows)


def test_allowed_folders_are_named_in_plain_words():
    samples, photos = Path("/venv/lib/python3.11/site-packages/skimage/data"), Path("/srv/photos")
    text = views.roots_text([photos, samples], {samples: "the bundled sample photos"})
    assert text == "/srv/photos, the bundled sample photos" and "skimage" not in text
    assert "weights: registry" not in " ".join(views.STATS_HEADERS) and "ImageNet weights from" in views.STATS_HEADERS


def test_map_svg_escapes_paths_and_names_every_folder():
    hostile = '/data/a"><img src=x onerror=alert(1)>/x.jpg'
    points = MapPoints(model="vgg16", method="PCA", ids=[1, 2, 3], paths=["/data/cats/1.jpg", "/data/dogs/2.jpg", hostile],
                       sha256s=["a" * 64, "b" * 64, "c" * 64], groups=class_groups(
                           ["/data/cats/1.jpg", "/data/dogs/2.jpg", hostile]),
                       xy=np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]]), total=5)
    svg = views.map_svg(points, "VGG16")
    assert "<img" not in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert len(re.findall(r"<circle ", svg)) == 3 and 'data-id="2"' in svg
    assert "(a sample of 3 of 5)" in svg
    keys = re.findall(r'class="map-key"[^>]*><i style="background:#\w+"></i>([^<]+)<', svg)
    assert set(keys) == {"cats", "dogs", "a&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"}


def test_map_groups_are_classes_that_a_second_folder_or_an_upload_does_not_merge_and_samples_are_seeded():
    """Grouped by the first folder below the shared one, the 1,000 Corel photos turned one colour ("work")
    once an upload ("tmp") was indexed."""
    paths = ["/work/corel/africa/1.jpg", "/work/corel/beach/2.jpg", "/home/me/photos/3.jpg",
             "/app/uploads/abc-x.jpg", "/other/africa/4.jpg"]
    assert class_groups(paths, Path("/app/uploads")) == ["corel/africa", "beach", "photos", "uploads", "other/africa"]
    assert class_groups(["/only/here/1.jpg"]) == ["here"]
    ids = list(range(10_000))
    assert sample_ids(ids, cap=50) == sample_ids(list(reversed(ids)), cap=50) and len(sample_ids(ids, cap=50)) == 50
    assert sample_ids(ids[:20], cap=50) == ids[:20]
    with pytest.raises(ValueError, match="method must be one of PCA, t-SNE"):
        project(np.eye(4, dtype=np.float32), "UMAP")


def test_a_query_that_matches_nothing_says_so_with_the_calibrated_levels():
    """A cat among food and flowers got hits at cos 0.61 shown exactly like real matches (about 0.8)."""
    def result(resnet: float, vgg: float, **options) -> QueryResult:
        def at(i: int, cosine: float) -> Hit:
            return Hit(i, f"/i/{i}.jpg", "0" * 64, (2 - 2 * cosine) ** 0.5, cosine)
        hits = {"resnet50": [at(7, 1.0), at(1, resnet)], "vgg16": [at(2, vgg)]}  # 7: the query itself
        return QueryResult(query="/q/cat.jpg", id=7, hits=hits, **options)
    images = {1: Path("/s/1.webp"), 2: Path("/s/2.webp"), 7: Path("/s/7.webp")}
    said = views.status_text(result(0.52, 0.58), images)
    assert "No close match in the index" in said and "cos 0.52 (ResNet50) and cos 0.58 (VGG16)" in said
    assert "(ResNet50 0.55, VGG16 0.60)" in said  # the levels, from scripts/close_match.py on Corel-1k
    assert "No close match" not in views.status_text(result(0.52, 0.81), images)  # one model found one
    assert "No close match" not in views.status_text(result(0.52, 0.58, rerank="dba"), images)  # other vectors


def test_every_shared_rank_has_the_same_style_of_mark_up_to_the_largest_k():
    """Above rank 20 the marks changed from ① to "(25)"."""
    assert [views.circled(n) for n in (1, 20, 21, 35, 36, 50)] == ["①", "⑳", "㉑", "㉟", "㊱", "㊿"]
    with pytest.raises(ValueError, match="no circled number for 51"):
        views.circled(51)


def test_the_agreement_is_said_in_plain_words_and_says_when_nothing_is_shared():
    def result(first: list[int], second: list[int]) -> QueryResult:
        hits = {m: [hit(i, f"/r/{i}.jpg", 0.1 * n) for n, i in enumerate(ids)]
                for m, ids in (("resnet50", first), ("vgg16", second))}
        return QueryResult(query="q.jpg", id=0, hits=hits,
                           agreement={("resnet50", "vgg16"): agreement(first, second, len(first))})
    text = views.agreement_text(result([1, 2, 3, 4], [3, 1, 5, 6]))
    assert text.startswith("**2 of 4 in both lists** (marked ①, ②, … in both). Overlap 0.50: the share of the top 4")
    assert "Jaccard 0.33: shared hits over all different hits" in text and "(1: the same order, −1: reversed)" in text
    assert "needs 2 shared hits" in views.agreement_text(result([1, 2], [1, 3]))
    # before: "0 shared hits", and the row of hits found by one model only repeated both lists whole
    assert views.agreement_text(result([1, 2], [3, 4])) == (
        "ResNet50 and VGG16 share **none** of their top 2: each list below is all its own.")


def test_a_fused_hit_says_its_rank_in_each_models_list():
    """A fused hit did not say which model found it."""
    fused = FusedHit(id=1, path="/r/elephants/0516.jpg", sha256="0" * 64, cosine=0.8,
                     cosines={"resnet50": 0.85, "vgg16": 0.75}, ranks={"resnet50": 2, "vgg16": None})
    assert views.caption(1, fused) == "#1 cos 0.800 · elephants/0516.jpg · L2 0.632 · ResNet50 #2 · VGG16 —"


def test_folder_choices_name_each_folder_from_its_root_down_and_leave_out_the_rest():
    """Every folder of indexed images under a root or the uploads, and each folder above it up to the
    root, by a name that starts at the root's own name; folders outside them are not offered."""
    roots = [Path("/srv/images"), Path("/home/app/uploads")]
    folders = ["/srv/images/corel/elephants", "/srv/images/corel/beaches", "/home/app/uploads", "/etc/secret"]
    assert views.folder_choices(folders, roots) == {
        "images": "/srv/images", "images/corel": "/srv/images/corel",
        "images/corel/beaches": "/srv/images/corel/beaches", "images/corel/elephants": "/srv/images/corel/elephants",
        "uploads": "/home/app/uploads"}
    twins = [Path("/srv/a/images"), Path("/srv/b/images")]
    assert views.folder_choices(["/srv/a/images", "/srv/b/images/cats"], twins) == {
        "a/images": "/srv/a/images", "b/images": "/srv/b/images", "b/images/cats": "/srv/b/images/cats"}
