"""`python -m searchcore` as a user runs it: subprocesses on real photos, a temp Milvus, the real Redis."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from searchcore import Engine
from searchcore.decode import read_raw

from tests.conftest import ROOT, run_cli


def add_bad_files(folder: Path) -> list[Path]:
    good = next(folder.glob("*.jpg")).read_bytes()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 3])
    text = folder / "text.png"
    text.write_text("not an image")
    bomb = folder / "bomb.png"
    Image.new("1", (10_000, 6_000)).save(bomb)
    return [truncated, text, bomb]


def test_index_is_idempotent_and_reports_bad_files(cli_env, photo_dir):
    bad = add_bad_files(photo_dir)
    first = run_cli(cli_env, "index", str(photo_dir))
    assert first.returncode == 1, first.stderr
    assert first.stdout.strip().startswith("indexed 8, already there 0, duplicates 0, failed 3")
    for path, reason in zip(bad, ("truncated", "not an image", "over the limit")):
        assert f"failed: {path}: " in first.stderr and reason in first.stderr
    shutil.copy(next(photo_dir.glob("*.jpg")), photo_dir / "nested" / "copy.JPG")
    again = run_cli(cli_env, "index", str(photo_dir))
    assert again.stdout.strip().startswith("indexed 0, already there 8, duplicates 1, failed 3")
    stats = json.loads(run_cli(cli_env, "stats", "--json").stdout)
    assert {m: s["rows"] for m, s in stats["models"].items()} == {"resnet50": 8, "vgg16": 8}
    assert stats["redis_cache"] is True


def test_search_json_marks_itself_and_compares_models(cli_env, photo_dir):
    assert run_cli(cli_env, "index", str(photo_dir)).returncode == 0
    cat, coffee = photo_dir / "nested" / "chelsea.jpg", photo_dir / "coffee.jpg"
    out = run_cli(cli_env, "search", str(cat), str(coffee), "--top-k", "4", "--json")
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["query"] for r in results] == [str(cat), str(coffee)]
    for result, path in zip(results, (cat, coffee)):
        assert result["id"] == read_raw(path).id
        for model in ("resnet50", "vgg16"):
            top = result["hits"][model][0]
            assert (top["rank"], top["file"], top["self"]) == (1, str(path.resolve()), True)
            assert top["l2"] < 1e-3 and top["cosine"] > 0.999
            assert len(result["hits"][model]) == 4 and not any(h["self"] for h in result["hits"][model][1:])
            assert all(a["l2"] <= b["l2"] for a, b in zip(result["hits"][model], result["hits"][model][1:]))
        pair = result["agreement"]["resnet50~vgg16"]
        assert pair["k"] == 4 and 1 <= pair["shared"] <= 4 and pair["overlap_at_k"] == pair["shared"] / 4
        assert result["fused"][0]["self"] and len(result["fused"]) == 4
    by_id = run_cli(cli_env, "search", "--id", str(results[0]["id"]), "--top-k", "3", "--json")
    hits = json.loads(by_id.stdout)["hits"]["vgg16"]
    assert hits[0]["self"] and [h["id"] for h in hits] == [h["id"] for h in results[0]["hits"]["vgg16"][:3]]
    text = run_cli(cli_env, "search", str(cat), "--top-k", "2").stdout
    assert "(itself)" in text and "agreement resnet50~vgg16: overlap@2" in text


def test_remove_by_path_and_id(cli_env, photo_dir):
    run_cli(cli_env, "index", str(photo_dir))
    assert run_cli(cli_env, "remove", str(photo_dir / "nested")).stdout.strip() == "removed 4 image(s)"
    assert run_cli(cli_env, "remove", str(read_raw(photo_dir / "astronaut.jpg").id)).stdout.strip() == \
        "removed 1 image(s)"
    stats = json.loads(run_cli(cli_env, "stats", "--json").stdout)
    assert [s["rows"] for s in stats["models"].values()] == [3, 3]


def wal_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.glob("collections/*/wal/*") if p.is_file())


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(cli_env, settings, many_photos):
    db = Path(settings.milvus_uri)
    cli_env = {**cli_env, "SEARCHCORE_BATCH_SIZE": "4", "SEARCHCORE_REDIS_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "searchcore", "index", str(many_photos)], env=cli_env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while wal_bytes(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = run_cli(cli_env, "index", str(many_photos))
    assert rerun.returncode == 0, rerun.stderr
    counts = rerun.stdout.split(",")
    indexed, already = int(counts[0].split()[-1]), int(counts[1].split()[-1])
    assert already > 0 and indexed + already == 48, rerun.stdout
    with Engine(settings) as engine:
        ids = {read_raw(p).id for p in many_photos.iterdir()}
        for store in (m.store for m in engine.models.values()):
            assert store.count() == 48
            assert set(store.existing(ids)) == ids


def test_bad_top_k_and_special_files_get_a_clear_message(cli_env, photo_dir, tmp_path):
    photo = photo_dir / "coffee.jpg"
    for k in ("0", "-1", "20000", "ten"):
        out = run_cli(cli_env, "search", str(photo), "--top-k", k, timeout=60)
        assert out.returncode == 2 and "top k must be a whole number" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    out = run_cli(cli_env, "search", str(fifo), str(zero), str(photo), "--top-k", "2", timeout=120)
    assert out.returncode == 1, out.stderr
    assert f"error: {fifo}: not a regular file (a FIFO)" in out.stdout
    assert f"error: {zero}: not a regular file (a character device)" in out.stdout
    assert f"query {photo} (id {read_raw(photo).id})" in out.stdout and out.stdout.count("error:") == 2


def test_index_says_when_a_link_leads_out_of_the_folder(cli_env, photo_dir, tmp_path):
    outside = tmp_path / "outside.jpg"
    Image.open(photo_dir / "coffee.jpg").rotate(90, expand=True).save(outside)
    (photo_dir / "link.jpg").symlink_to(outside)
    out = run_cli(cli_env, "index", str(photo_dir))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("indexed 9, already there 0, duplicates 0, failed 0")
    assert "1 file(s) reached through links that lead outside the folder given" in out.stdout
    assert f"note: {photo_dir / 'link.jpg'} is a link that leads outside the folder given" in out.stderr
