"""`python -m searchcore` as a user runs it (a few subprocesses: what only the CLI does, its output and
exit codes), and the operations behind it checked on the `engine` fixture, in process."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore import Engine
from searchcore.files.decode import read_raw
from searchcore.retrieval.options import SearchOptions
from searchcore.retrieval.rerank import dba

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


def test_cli_indexes_searches_and_removes_with_clear_output(cli_env, photo_dir, tmp_path):
    """The CLI's own work: its lines, its exit codes, the link note, JSON and text output."""
    bad = add_bad_files(photo_dir)
    outside = tmp_path / "outside.jpg"
    Image.open(photo_dir / "coffee.jpg").rotate(90, expand=True).save(outside)
    (photo_dir / "link.jpg").symlink_to(outside)
    first = run_cli(cli_env, "index", str(photo_dir))
    assert first.returncode == 1, first.stderr
    lines = first.stdout.strip().splitlines()
    assert lines[0].startswith("indexed 9, already there 0, duplicates 0, failed 3")
    assert "1 file(s) reached through links that lead outside the folder given" in lines[0]
    assert lines[1].startswith("time per stage: read ") and " · inference " in lines[1] and " · write " in lines[1]
    for path, reason in zip(bad, ("truncated", "not an image", "over the limit")):
        assert f"failed: {path}: " in first.stderr and reason in first.stderr
    assert f"note: {photo_dir / 'link.jpg'} is a link that leads outside the folder given" in first.stderr

    cat, coffee = photo_dir / "nested" / "chelsea.jpg", photo_dir / "coffee.jpg"
    out = run_cli(cli_env, "search", str(cat), str(coffee), "--id", str(read_raw(cat).id), "--top-k", "4", "--json")
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["query"] for r in results[:2]] == [str(cat), str(coffee)] and results[2]["id"] == read_raw(cat).id
    for result in results:
        assert len(result["hits"]["resnet50"]) == 4 and result["hits"]["vgg16"][0]["self"]
        assert result["agreement"]["resnet50~vgg16"]["k"] == 4 and result["fused"][0]["self"]
    text = run_cli(cli_env, "search", str(cat), "--top-k", "2", "--rerank", "dba+qe").stdout
    assert "(itself)" in text and "agreement resnet50~vgg16: overlap@2" in text and "fused (RRF):" in text
    within = run_cli(cli_env, "search", str(coffee), "--under", str(photo_dir / "nested"), "--intent", "same",
                     "--top-k", "10", "--json")
    found = json.loads(within.stdout)
    assert found["robust"] and [len(hits) for hits in found["hits"].values()] == [4, 4]  # all 4, only those
    assert all(h["file"].startswith(f"{photo_dir / 'nested'}/") for hits in found["hits"].values() for h in hits)
    both = run_cli(cli_env, "search", str(coffee), "--intent", "similar", "--robust")
    assert both.returncode == 2 and "--intent sets the re-ranking" in both.stderr

    assert run_cli(cli_env, "remove", str(photo_dir / "nested")).stdout.strip() == "removed 4 image(s)"
    assert run_cli(cli_env, "remove", "--id", str(read_raw(coffee).id)).stdout.strip() == "removed 1 image(s)"
    stats = json.loads(run_cli(cli_env, "stats", "--json").stdout)
    assert [s["rows"] for s in stats["models"].values()] == [4, 4] and stats["redis_cache"] is True
    nothing = run_cli(cli_env, "remove")
    assert nothing.returncode == 2 and "remove needs a file or folder, or --id ID" in nothing.stderr


def test_bad_top_k_gets_one_line_before_any_model_loads(cli_env, photo_dir):
    for k in ("0", "ten"):
        out = run_cli(cli_env, "search", str(photo_dir / "coffee.jpg"), "--top-k", k, timeout=60)
        assert out.returncode == 2 and "top k must be a whole number" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def wal_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.glob("collections/*/wal/*") if p.is_file())


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(cli_env, settings, many_photos):
    db = Path(settings.milvus_uri)
    cli_env = {**cli_env, "SEARCHCORE_BATCH_SIZE": "4", "SEARCHCORE_REDIS_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "searchcore", "index", str(many_photos)], env=cli_env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # killed once the write-ahead log has grown five times (a few of the 12 batches are written)
    deadline, sizes = time.monotonic() + 300, {0}
    while len(sizes) < 6 and proc.poll() is None and time.monotonic() < deadline:
        sizes.add(wal_bytes(db))
        time.sleep(0.02)
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


def test_index_is_idempotent_counts_duplicates_and_reports_bad_files(engine, photo_dir):
    bad = add_bad_files(photo_dir)
    first = engine.index([photo_dir])
    assert (first.indexed, first.already, first.duplicates) == (8, 0, 0)
    assert {f.source: f.kind for f in first.failed} == {str(bad[0]): "broken or truncated",
                                                        str(bad[1]): "not an image", str(bad[2]): "too many pixels"}
    shutil.copy(next(photo_dir.glob("*.jpg")), photo_dir / "nested" / "copy.JPG")
    again = engine.index([photo_dir])
    assert (again.indexed, again.already, again.duplicates, len(again.failed)) == (0, 8, 1, 3)
    assert {m: s["rows"] for m, s in engine.stats()["models"].items()} == {"resnet50": 8, "vgg16": 8}


def test_search_marks_itself_and_compares_models(engine, photo_dir):
    engine.index([photo_dir])
    cat, coffee = photo_dir / "nested" / "chelsea.jpg", photo_dir / "coffee.jpg"
    results = [r.to_json() for r in engine.search_files([cat, coffee], SearchOptions(k=4))]
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
    by_id = engine.search_id(results[0]["id"], SearchOptions(k=3)).to_json()["hits"]["vgg16"]
    assert by_id[0]["self"] and [h["id"] for h in by_id] == [h["id"] for h in results[0]["hits"]["vgg16"][:3]]
    assert "not indexed" in engine.search_id(12345, SearchOptions(k=3)).error


def test_remove_takes_a_folder_named_with_digits_as_a_folder(engine, photo_dir, tmp_path, monkeypatch):
    """`remove 2024` removes the folder 2024 (it was taken as the image id 2024, which removed nothing)."""
    (tmp_path / "2024").mkdir()
    shutil.copy(photo_dir / "coffee.jpg", tmp_path / "2024" / "coffee.jpg")
    assert engine.index([tmp_path / "2024"]).indexed == 1
    monkeypatch.chdir(tmp_path)
    assert engine.remove("2024") == 1
    assert [s["rows"] for s in engine.stats()["models"].values()] == [0, 0]


def test_remove_by_folder_and_id_keeps_the_dba_collection_in_step(engine, photo_dir, many_photos):
    engine.index([photo_dir, many_photos])
    assert engine.remove(str(photo_dir / "nested")) == 4
    assert engine.remove_ids([read_raw(photo_dir / "astronaut.jpg").id]) == 1
    assert engine.remove(str(photo_dir / "nested")) == 0
    assert [s["rows"] for s in engine.stats()["models"].values()] == [51, 51]
    for m in engine.models.values():
        ids = sorted(m.store.all_ids())
        assert sorted(m.dba.all_ids()) == ids  # no DBA row of a removed image is left
        assert engine.rebuild_dba([m.name]) == 51
        vectors = m.store.vectors(ids)
        expected = dba(np.stack([vectors[i] for i in ids]))
        rebuilt = m.dba.vectors(ids)
        np.testing.assert_allclose(np.stack([rebuilt[i] for i in ids]), expected, atol=1e-5)


@pytest.mark.parametrize("k", [0, -1, 1001, 2.0, "ten", True])
def test_top_k_outside_1_to_1000_is_refused(engine, photo_dir, k):
    with pytest.raises(ValueError, match="top k must be a whole number from 1 to 1000"):
        engine.search_files([photo_dir / "coffee.jpg"], SearchOptions(k=k))


def test_special_files_get_a_clear_error_next_to_a_good_query(engine, photo_dir, tmp_path):
    engine.index([photo_dir])
    photo = photo_dir / "coffee.jpg"
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    results = engine.search_files([fifo, zero, photo], SearchOptions(k=2))
    assert [r.error for r in results] == [f"{fifo}: not a regular file (a FIFO)",
                                          f"{zero}: not a regular file (a character device)", None]
    assert results[2].id == read_raw(photo).id and results[2].hits["vgg16"][0].id == read_raw(photo).id


def test_index_notes_links_that_lead_out_of_the_folder(engine, photo_dir, tmp_path):
    outside = tmp_path / "outside.jpg"
    Image.open(photo_dir / "coffee.jpg").rotate(90, expand=True).save(outside)
    (photo_dir / "link.jpg").symlink_to(outside)
    report = engine.index([photo_dir])
    assert (report.indexed, len(report.failed), report.links_out) == (9, 0, [str(photo_dir / "link.jpg")])
    assert "1 file(s) reached through links that lead outside the folder given" in report.summary()


def test_copies_of_a_file_that_fails_are_failures_of_their_own(engine, photo_dir, tmp_path):
    """5,000 empty files were reported as "duplicates 4999, failed 1", with one of them in the list."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for n in range(40):  # more than a batch: copies come before and after the first one's failure is known
        (folder / f"empty-{n:02}.jpg").write_bytes(b"")
    coffee = (photo_dir / "coffee.jpg").read_bytes()
    for n in range(3):
        (folder / f"cut-{n}.jpg").write_bytes(coffee[:300])
    (folder / "coffee.jpg").write_bytes(coffee)
    (folder / "coffee-again.jpg").write_bytes(coffee)
    report = engine.index([folder])
    assert (report.indexed, report.duplicates, len(report.failed)) == (1, 1, 43), report.summary()
    assert sorted(Path(f.source).name for f in report.failed) == sorted(
        [f"empty-{n:02}.jpg" for n in range(40)] + [f"cut-{n}.jpg" for n in range(3)])
    assert {f.kind for f in report.failed if "empty-" in f.source} == {"empty file"}


def test_progress_counts_the_files_done_without_a_terminal(engine, some_photos):
    """Under an app or a Space (no terminal) tqdm's bar is off and its count stays 0: the page said
    "Indexing the photos: 0 of 1,000 done" for the whole run."""
    seen = []
    engine.index([some_photos], on_progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert seen[-1] == (24, 24) and done == sorted(done) and 16 in done  # a batch at a time
