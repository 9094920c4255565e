"""Nothing outside the allowed roots is read, indexed, thumbnailed or served, by any path (issue 19)."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from searchcore.files.decode import read_raw
from searchcore.files.samples import sample_files
from searchcore.files.shown import ShownFiles
from searchcore.web import views
from searchcore.web.map_tab import hover_thumbnail
from searchcore.web.startup import StartupIndexing, index_roots
from tests.conftest import SAMPLES


def photo(folder: Path, sample: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.open(SAMPLES / sample).convert("RGB").save(folder / name, quality=90)
    return folder / name


def test_the_map_serves_thumbnails_by_indexed_id_only_for_images_under_the_roots(engine, tmp_path):
    allowed = photo(tmp_path / "allowed", "coffee.png", "coffee.jpg")
    secret = photo(tmp_path / "private", "chelsea.png", "secret.jpg")
    engine.index([allowed.parent, secret.parent])  # as the CLI may: outside the app's roots
    shown = ShownFiles(tmp_path / "shown", [allowed.parent], engine.settings.max_pixels, engine.thumbnails)
    mine, theirs = read_raw(allowed), read_raw(secret)
    # before: an allowed path with the private image's SHA-256 linked the private thumbnail in
    assert shown.thumbnail(str(allowed), theirs.sha256) is None
    assert not any((tmp_path / "shown").rglob(f"{theirs.sha256}*"))
    assert hover_thumbnail(engine, shown, [str(theirs.id)]) == ""
    url = hover_thumbnail(engine, shown, [str(mine.id)])
    assert Path(url.removeprefix("gradio_api/file=")) == tmp_path / "shown" / "thumbs" / f"{mine.sha256}.jpg"
    for hostile in ([str(allowed), theirs.sha256], ["../../etc/passwd"], ["9" * 300], ["²"], [str(2**63)],
                    [True], None, {"id": mine.id}, [str(mine.id), "x"]):
        assert hover_thumbnail(engine, shown, hostile) == "", hostile
    for sha in ("../" * 4 + "etc/passwd", "f" * 300, mine.sha256.upper()):
        assert shown.thumbnail(str(allowed), sha) is None
    points = engine.map_points("resnet50").only(shown.allows)
    assert points.ids == [mine.id] and points.total == 2
    drawn = views.map_svg(points, "ResNet50")
    assert 'data-n="allowed/coffee.jpg"' in drawn
    assert mine.sha256 not in drawn and str(tmp_path) not in drawn and "secret" not in drawn


def test_start_up_indexing_reads_nothing_a_link_in_the_folder_points_out_to(engine, tmp_path):
    folder = photo(tmp_path / "photos", "coffee.png", "coffee.jpg").parent
    outside = photo(tmp_path / "elsewhere", "chelsea.png", "cat.jpg")
    (folder / "cat.jpg").symlink_to(outside)
    (folder / "passwd.jpg").symlink_to("/etc/passwd")
    startup = StartupIndexing(engine, folder, index_roots(engine.settings, folder)).start()
    assert startup.finished.wait(timeout=300) and startup.failure is None
    # before: the photo behind the link was read and indexed (and then served through the map)
    assert engine.row(read_raw(outside).id) is None
    assert engine.row(read_raw(folder / "coffee.jpg").id) is not None
    assert [s["rows"] for s in engine.stats()["models"].values()] == [1, 1]


def test_evaluate_reads_only_under_the_roots_survives_bad_links_and_bounds_its_walk(engine, tmp_path, monkeypatch):
    root = tmp_path / "labelled"
    for label, samples in (("cats", ("chelsea.png", "astronaut.png")), ("cups", ("coffee.png", "rocket.jpg"))):
        for n, sample in enumerate(samples):
            photo(root / label, sample, f"{n}.jpg")
    outside = photo(tmp_path / "private", "camera.png", "secret.jpg").parent
    (root / "linked-out").symlink_to(outside)  # a class folder that points out of the roots
    (root / "everything").symlink_to("/")  # walked 117,723 folders before
    (root / "cats" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # failed the whole evaluation before
    (root / "cups" / "out.jpg").symlink_to(outside / "secret.jpg")
    report = engine.evaluate(root, roots=[root])
    assert (report.images, report.classes) == (4, ["cats", "cups"])
    assert sorted(Path(f.source).name for f in report.failed) == ["gone.jpg", "out.jpg"]
    assert all(str(outside) not in f.reason for f in report.failed)
    (tmp_path / "nothing" / "class").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"nothing holds 0 image\(s\) that could be read in class folders"):
        engine.evaluate(tmp_path / "nothing", roots=[tmp_path])  # a KeyError before
    monkeypatch.setattr("searchcore.evaluation.evaluate.MAX_FOLDERS", 1)
    with pytest.raises(ValueError, match=r"labelled holds more than 1 folders; evaluate a smaller folder"):
        engine.evaluate(root, roots=[root])


def test_an_empty_or_missing_photo_folder_gives_the_samples_and_the_page_says_why(engine, tmp_path):
    """An empty or missing --images folder gave an app with 0 hits and no word why."""
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        startup = StartupIndexing(engine, folder, index_roots(engine.settings, folder)).start()
        assert startup.finished.wait(timeout=300) and startup.failure is None
        said = views.startup_text(startup.done, startup.total, True, startup.failure, startup.note)
        assert said == f"ℹ️ {views.safe(str(folder))} holds no photos (or is missing). The app shows the bundled " \
                       "sample photos instead."
        assert [s["rows"] for s in engine.stats()["models"].values()] == [len(sample_files())] * 2
