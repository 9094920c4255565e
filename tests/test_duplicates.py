"""Near-duplicate groups, from the real models and Milvus: planted copies among unrelated real photos."""
from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path

from PIL import Image

from searchcore.files.shown import ShownFiles
from searchcore.inspection.edits import crop
from searchcore.retrieval.duplicates import THRESHOLDS, components, scored_pairs
from searchcore.web.duplicates_tab import find_duplicates
from tests.conftest import labelled_folder, needs_corel, run_cli


def plant_copies(originals: list[Path], folder: Path) -> dict[str, set[str]]:
    """A copy of each original resized to half, one re-saved as JPEG at quality 50, and one cropped to
    90% of its area; returns each original's group of files (itself and its copies)."""
    rng = random.Random(0)
    groups = {}
    for n, original in enumerate(originals):
        image = Image.open(original).convert("RGB")
        copies = {"resized": image.resize((image.width // 2, image.height // 2)), "jpeg": image,
                  "crop": crop(image, 0.9, rng)}
        groups[str(original)] = {str(original)}
        for kind, edited in copies.items():
            path = folder / kind / f"{n}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            out = io.BytesIO()
            edited.save(out, "JPEG", quality=50 if kind == "jpeg" else 92)
            path.write_bytes(out.getvalue())
            groups[str(original)].add(str(path))
    return groups


@needs_corel("crops of one sample photo are near-duplicates")
def test_planted_copies_are_grouped_with_their_originals_and_with_nothing_else(cli_env, tmp_path):
    """`duplicates --json`, by each model and fused at its measured threshold: each original with its
    resized, re-saved and cropped copies, in a group of its own; no other group among the 40 photos."""
    photos = labelled_folder(tmp_path / "photos")
    originals = sorted(photos.rglob("*.jpg"))[::9][:4]  # from different classes
    planted = plant_copies(originals, tmp_path / "copies")
    assert run_cli(cli_env, "index", str(photos), str(tmp_path / "copies")).returncode == 0
    for scoring in ("resnet50", "vgg16", "fused"):
        done = run_cli(cli_env, "duplicates", "--model", scoring, "--json")
        assert done.returncode == 0, done.stderr
        groups = json.loads(done.stdout)["groups"]
        assert {frozenset(m["file"] for m in g["members"]) for g in groups} == set(map(frozenset, planted.values())), \
            (scoring, groups)
        for group in groups:
            first, *rest = group["members"]
            assert first["similarity"] == 1.0 and all(THRESHOLDS[scoring] - 0.05 < m["similarity"] < 1 for m in rest)
    done = run_cli(cli_env, "duplicates", "--threshold", "2")
    assert done.returncode == 2 and "the threshold is a cosine from 0 to 1" in done.stderr


def test_pairs_stay_few_and_groups_are_the_components(engine, many_photos):
    """Each image asks for its few nearest only: at most neighbours pairs per image, never every pair."""
    engine.index([many_photos])
    stores = {m: engine.models[m].store for m in engine.models}
    scores, rows = scored_pairs(stores, neighbours=3, batch=10)
    assert 0 < len(scores) <= 3 * 48 and len(rows) == 48 and all(a < b for a, b in scores)
    assert all(-1 <= s <= 1 for s in scores.values())
    assert sorted(map(sorted, components([(1, 2), (3, 4), (2, 5), (6, 6)]))) == [[1, 2, 5], [3, 4], [6]]


def test_the_tab_shows_rows_of_thumbnails_and_a_public_page_no_server_path(engine, tmp_path):
    photos = labelled_folder(tmp_path / "photos", classes=2, per_class=4)
    plant_copies(sorted(photos.rglob("*.jpg"))[:1], photos / "copies")
    engine.index([photos])
    shown = ShownFiles(tmp_path / "shown", [photos], engine.settings.max_pixels, engine.thumbnails)
    summary, rows, as_json = find_duplicates(engine, shown, "fused", THRESHOLDS["fused"])
    assert "**1 group(s)** of near-duplicates, 4 images" in summary, summary
    assert rows.count('class="dup-row"') == 1 and rows.count("<img") == 4 and str(photos) not in rows
    assert len(as_json["groups"][0]["members"]) == 4
    engine.settings = replace(engine.settings, public=True)
    _, _, public = find_duplicates(engine, shown, "fused", THRESHOLDS["fused"])
    assert str(photos) not in json.dumps(public) and str(photos) in json.dumps(as_json)
    assert "not 'clip'" in find_duplicates(engine, shown, "clip", 0.9)[0]
