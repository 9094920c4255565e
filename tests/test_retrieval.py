"""Retrieval quality on real photos: the proof that weights and preprocessing are right."""
from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore import MODEL_NAMES, Engine
from searchcore.evaluation.evaluate import EmbeddingsFile, _similarity, labelled_images
from searchcore.files.decode import content_id, raw_from_bytes, read_raw
from searchcore.files.samples import sample_files
from searchcore.files.shown import ShownFiles
from searchcore.retrieval.options import Intent, Rerank, SearchOptions
from searchcore.retrieval.rerank import dba
from searchcore.retrieval.fusion import FUSION_POOL, fuse, fused_order, rrf_order, rrf_ranking
from searchcore.storage.regions import region_vectors, regions_per_image, row_id
from tests.conftest import COREL, PHOTOS, SAMPLES, crops_of_photos, run_cli, needs_corel, settings_in, EVALUATIONS


def test_two_crops_of_one_photo_are_nearest_each_other(engine, tmp_path):
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir(), right.mkdir()
    for name in PHOTOS:
        image = Image.open(SAMPLES / name).convert("RGB")
        w, h = image.size
        image.crop((0, 0, int(w * 0.8), int(h * 0.85))).save(left / f"{name}.jpg", quality=90)
        image.crop((int(w * 0.2), int(h * 0.15), w, h)).save(right / f"{name}.jpg", quality=90)
    assert engine.index([left]).indexed == len(PHOTOS)
    results = engine.search_files(sorted(right.iterdir()), SearchOptions(k=2))
    for query, result in zip(sorted(right.iterdir()), results):
        for model, hits in result.hits.items():
            assert hits[0].path == str(left / query.name), (model, query.name, hits[0].path)
            assert hits[0].cosine > hits[1].cosine
        assert result.fused[0].path == str(left / query.name)


# The single-model rows of the dataset's README (P@10, mAP); a correct export reproduces them to +-0.01.
REFERENCE = {"resnet50": (0.944, 0.839), "vgg16": (0.943, 0.842), "fused": (0.953, 0.863)}
# This project's own figures since its first export: a rebuilt model (the feature-map output added, say)
# must give the same vectors, so the same figures to within rounding.
PINNED = {"resnet50": {"P@1": 0.969, "P@10": 0.9446, "mAP": 0.83939},
          "vgg16": {"P@1": 0.966, "P@10": 0.9425, "mAP": 0.84174}}


@needs_corel("the reference figures are its own")
def test_corel1k_reproduces_the_reference_figures(cli_env, settings):
    """The fp32 export on the whole dataset. Its vectors are kept across runs, named by the files (path,
    size, mtime) and the model builds, so only a new build (or changed files) is embedded again; one
    photo of each class is embedded anew here and must give the kept vector, so a broken decode or
    preprocessing cannot hide behind the kept ones."""
    env = {**cli_env, "SEARCHCORE_PRECISION": "fp32", "SEARCHCORE_EVAL_DIR": str(EVALUATIONS)}
    out = run_cli(env, "eval", str(COREL), "--json", timeout=1800)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["images"], len(report["classes"]), report["failed"]) == (1000, 10, [])
    for model, pinned in PINNED.items():
        assert {k: report["scores"][model][k] for k in pinned} == pytest.approx(pinned, abs=2e-4)
    for model, (p10, ap) in REFERENCE.items():
        scores = report["scores"][model]
        assert scores["P@10"] == pytest.approx(p10, abs=0.01), (model, scores)
        assert scores["mAP"] == pytest.approx(ap, abs=0.01), (model, scores)
        assert scores["P@1"] >= scores["P@10"] >= scores["P@20"]
    with Engine(replace(settings, precision="fp32", redis_url="")) as engine:
        files = labelled_images(COREL.resolve())  # as the evaluation names them: links resolved
        kept = EmbeddingsFile(EVALUATIONS)
        embeddings = kept.load(kept.path(files, [m.encoder.cache_key for m in engine.models.values()]), MODEL_NAMES)
        assert embeddings is not None and len(embeddings.paths) == 1000
        fresh = [files[n][0] for n in range(0, 1000, 100)]
        for path, result in zip(fresh, engine.search_files(fresh, SearchOptions(k=1))):
            row = embeddings.paths.index(str(path))
            for model in MODEL_NAMES:
                assert float(result.vectors[model] @ embeddings.vectors[model][row]) > 0.9999, (model, path)


def engine_over_crops(home: Path, model_dir: Path, regions: bool = False):
    """An engine over 64 crops of the sample photos: more images than the fusion pool of 50."""
    folder = crops_of_photos(home / "crops", per_photo=8)
    settings = settings_in(home, model_dir, regions=regions)
    with Engine(settings) as engine:
        assert engine.index([folder]).indexed == 8 * len(PHOTOS)
        engine.settle()  # its DBA vectors made: the tests count Milvus calls and compare DBA rankings
        yield engine, sorted(folder.iterdir())


@pytest.fixture(scope="module")
def crops_engine(tmp_path_factory, model_dir):
    yield from engine_over_crops(tmp_path_factory.mktemp("crops"), model_dir)


@pytest.fixture(scope="module")
def crops_regions_engine(tmp_path_factory, model_dir):
    """The same, with regional descriptors too."""
    yield from engine_over_crops(tmp_path_factory.mktemp("crops-regions"), model_dir, regions=True)


@pytest.mark.parametrize("regions", [False, True], ids=["images", "regions"])
def test_fused_lists_score_few_candidates_yet_rank_as_if_they_scored_all(request, regions):
    """Fusion scores a candidate under a model that missed it only once it could be shown (for regions
    that is a fetch of 30 rows per image), yet both fused lists equal those of scoring every candidate
    of the pools exactly: same images, same order, same cosines."""
    engine, files = request.getfixturevalue("crops_regions_engine" if regions else "crops_engine")
    for query, k in zip(files[::8], [10, 20, 30, 40] * 2):  # the deeper lists hold hits one model missed
        result = engine.search_files([query], SearchOptions(k=k, regions=regions))[0]
        searched = {m: engine.models[m].searched(Rerank.NONE, regions=regions) for m in engine.models}
        pools = {m: searched[m].search(result.vectors[m][None], FUSION_POOL + 1)[0] for m in engine.models}
        exact = {m: {h.id: float(np.max(stored_rows(engine, m, h.sha256, regions) @ result.vectors[m]))
                     for hits in pools.values() for h in hits} for m in engine.models}
        every, _ = fuse(pools, exact, result.id)
        assert [(h.id, round(h.cosine, 5)) for h in result.fused] == \
            [(h.id, round(h.cosine, 5)) for h in sorted(every, key=lambda h: -h.cosine)[:k]], query.name
        assert [h.id for h in result.rrf] == [h.id for h in rrf_ranking(every, result.id)[:k]], query.name


def stored_rows(engine: Engine, model: str, sha256: str, regions: bool) -> np.ndarray:
    """An image's stored vector, or its regions' vectors, as rows."""
    if regions:
        return np.stack(list(engine.models[model].regions.vectors([row_id(sha256, n) for n in range(30)]).values()))
    return engine.models[model].store.vectors([content_id(sha256)])[content_id(sha256)][None]


def test_fused_scores_equal_the_exact_cosines_also_for_hits_one_model_missed(crops_engine):
    engine, files = crops_engine
    missed = 0
    for query in files[::4]:
        result = engine.search_files([query], SearchOptions(k=50))[0]  # the whole pool: some hits one model has
        for hit in result.fused:
            for model, cosine in hit.cosines.items():
                stored = engine.models[model].store.vectors([hit.id])[hit.id]
                assert cosine == pytest.approx(float(stored @ result.vectors[model]), abs=1e-5), (model, hit)
                missed += hit.ranks[model] is None
            assert hit.cosine == pytest.approx(sum(hit.cosines.values()) / 2, abs=1e-6)
        assert [h.cosine for h in result.fused] == sorted((h.cosine for h in result.fused), reverse=True)
    assert missed > 0  # some fused hits were scored from stored vectors, not from a model's own list


def test_the_apps_fused_list_is_the_evaluations_fused_ranking(crops_engine):
    """The fused figures of docs/benchmarks.md measure what the app shows: the same rule over exact similarities
    gives the same top 10 as the app's Fused list (HNSW is exact at this size)."""
    engine, files = crops_engine
    ids = sorted(engine.models["resnet50"].store.existing(content_id(raw_from_bytes(f.read_bytes(), "").sha256)
                                                          for f in files))
    stored = {m: engine.models[m].store.vectors(ids) for m in engine.models}
    matrices = {m: np.stack([stored[m][i] for i in ids]) for m in engine.models}
    for query in files[::8]:
        result = engine.search_files([query], SearchOptions(k=10))[0]
        similarities = [(matrices[m] @ result.vectors[m])[None, :] for m in engine.models]
        expected = [ids[i] for i in fused_order(similarities)[0][:10]]
        assert [h.id for h in result.fused] == expected, query.name


@pytest.mark.parametrize("rerank, robust, searches", [("none", False, 1), ("qe", False, 2), ("none", True, 1)])
def test_many_queries_cost_one_milvus_search_per_model_and_give_what_one_by_one_gives(
        crops_engine, monkeypatch, rerank, robust, searches):
    """A batch of queries asks each model's collection once (twice with alpha-QE), fetches what fusion
    needs for all queries together (far fewer fetches than queries), and every query gets the result
    it gets alone."""
    engine, files = crops_engine
    queries = files[1::6]  # 11 queries: with their turns, 55 rows, one request (SEARCH_CHUNK = 64)
    alone = [engine.search_files([q], SearchOptions(k=10, rerank=rerank, robust=robust))[0] for q in queries]
    calls = {"search": 0, "get": 0}
    for name in calls:
        real = getattr(engine.client, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(engine.client, name, counted)
    together = engine.search_files(queries, SearchOptions(k=10, rerank=rerank, robust=robust))
    models = len(engine.models)
    assert calls["search"] == searches * models, calls
    assert calls["get"] <= (searches - 1) * models + 2 * models < len(queries), calls  # QE; fusion's rounds
    for one, batched in zip(alone, together):
        assert {m: [h.id for h in hits] for m, hits in batched.hits.items()} == \
            {m: [h.id for h in hits] for m, hits in one.hits.items()}
        assert [h.id for h in batched.fused] == [h.id for h in one.fused]
        assert [h.id for h in batched.rrf] == [h.id for h in one.rrf]
        assert [h.cosine for h in batched.fused] == pytest.approx([h.cosine for h in one.fused], abs=1e-6)


def test_indexing_makes_the_thumbnails_and_only_images_under_the_roots_are_shown(engine, photo_dir, tmp_path):
    """Each indexed image gets its thumbnail while it is decoded (queries get none); the app's served
    folder links it in only for an image under its roots."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (photo_dir / "coffee.jpg").rename(outside / "coffee.jpg")
    assert engine.index([photo_dir, outside]).indexed == len(PHOTOS)
    made = engine.embedder.thumbnails
    assert len(list(made.folder.glob("*.jpg"))) == len(PHOTOS)
    query = tmp_path / "query.jpg"
    Image.open(outside / "coffee.jpg").crop((0, 0, 200, 150)).save(query)
    engine.search_files([query])
    assert len(list(made.folder.glob("*.jpg"))) == len(PHOTOS)
    shown = ShownFiles(tmp_path / "shown", [photo_dir], engine.settings.max_pixels, made)
    inside = read_raw(photo_dir / "nested" / "rocket.jpg")
    thumb = shown.thumbnail(inside.source, inside.sha256)
    assert thumb.samefile(made.path(inside.sha256)) and max(Image.open(thumb).size) == 256
    coffee = read_raw(outside / "coffee.jpg")
    assert made.path(coffee.sha256).is_file() and shown.thumbnail(str(outside / "coffee.jpg"), coffee.sha256) is None
    assert not (tmp_path / "shown" / "thumbs" / f"{coffee.sha256}.jpg").exists()


def test_an_index_run_seals_every_collection_it_wrote_to(settings, photo_dir, monkeypatch, tmp_path):
    """The image, DBA, region and turn collections are all flushed after a run (Milvus Lite searches
    unsealed rows one by one, and the app searches in the process that indexed); a run that adds
    nothing flushes nothing."""
    with Engine(replace(settings, regions=True, turns=True)) as engine:
        flushed = []
        real = engine.client.flush
        monkeypatch.setattr(engine.client, "flush", lambda name, **kw: (flushed.append(name), real(name, **kw)))
        gate = threading.Event()
        engine._upkeep.submit(gate.wait)  # the run's upkeep waits behind this
        try:
            engine.index([photo_dir])
            # the image collections are sealed before index() returns: the searches right after it use
            # their index (Milvus Lite searches unsealed rows one by one)
            assert set(flushed) == {m.store.name for m in engine.models.values()}, flushed
        finally:
            gate.set()
        engine.settle()  # the upkeep seals the rest of what the run wrote
        written = {s.name for m in engine.models.values() for s in (m.store, m.dba, *m.grouped().values())}
        assert len(written) == 8 and set(flushed) == written, flushed
        flushed.clear()
        engine.index([photo_dir])
        engine.settle()
        assert flushed == []


def test_index_report_times_each_stage_and_maps_follow_the_index(engine, photo_dir, many_photos):
    report = engine.index([photo_dir])
    engine.settle()  # the DBA step ("augment") is the upkeep's
    assert set(report.stages.seconds) == {"read", "decode", "inference", "write", "augment"}
    assert all(seconds > 0 for seconds in report.stages.seconds.values()), report.stages.seconds
    first = engine.map_points("resnet50")
    assert len(first.ids) == first.total == len(PHOTOS) and first.xy.shape == (len(PHOTOS), 2)
    assert engine.map_points("resnet50") is first  # cached while the index stays the same
    assert engine.map_points("vgg16").ids == first.ids  # the same images on both maps
    engine.index([many_photos])
    grown = engine.map_points("resnet50", "t-SNE")
    assert grown.total == len(PHOTOS) + 48 and grown.method == "t-SNE" and np.isfinite(grown.xy).all()


def test_dba_waits_for_its_vectors_and_the_search_says_what_ran(engine, photo_dir, many_photos):
    """A search while an index run or its upkeep has not made the DBA vectors of its images yet (the app's
    start-up indexing) missed those images: it runs on the plain vectors, alpha-QE kept, and says so. The
    run's images are searchable when index() returns, before the upkeep."""
    engine.index([photo_dir])
    coffee = read_raw(photo_dir / "coffee.jpg")
    during = []

    def search_meanwhile(done: int, total: int) -> None:
        if done and not during:
            during.append(engine.search_files([coffee.source], SearchOptions(k=3, rerank="dba+qe"))[0])
            during.append(engine.search_id(coffee.id, SearchOptions(k=3, rerank="dba")))
    gate = threading.Event()
    engine._upkeep.submit(gate.wait)  # the upkeep thread held: the run's upkeep waits behind this
    try:
        report = engine.index([many_photos], on_progress=search_meanwhile)
        newest = read_raw(sorted(many_photos.iterdir())[-1])
        before_upkeep = engine.search_files([newest.source], SearchOptions(k=3, rerank="dba+qe"))[0]
    finally:
        gate.set()
    assert [r.rerank for r in during] == ["qe", "none"]
    assert all(hits[0].id == coffee.id for hits in during[0].hits.values())
    assert before_upkeep.rerank == "qe" and newest.id in report.new_ids
    assert all(hits[0].id == newest.id for hits in before_upkeep.hits.values())
    engine.settle()
    after = engine.search_files([coffee.source], SearchOptions(k=3, rerank="dba+qe"))[0]
    assert after.rerank == "dba+qe" and all(hits[0].id == coffee.id for hits in after.hits.values())


def test_a_failed_upkeep_is_raised_by_settle_and_dba_searches_keep_to_the_plain_vectors(settings, photo_dir):
    """The DBA step of a run fails on the upkeep thread (its collection gone): settle() raised nothing and
    the CLI said the run was fine. Now settle() raises it once (asking whether DBA is current takes
    nothing away from it), and DBA searches run as alpha-QE."""
    with Engine(settings) as engine:
        gate = threading.Event()
        engine._upkeep.submit(gate.wait)  # the run's upkeep waits behind this
        try:
            engine.index([photo_dir])
            engine.client.drop_collection(engine.models["vgg16"].dba.name)
        finally:
            gate.set()
        assert engine.dba_current_after_upkeep() is False  # what the Index tab shows; the failure stays
        with pytest.raises(Exception, match=engine.models["vgg16"].dba.name):
            engine.settle()
        engine.settle()  # raised once
        found = engine.search_files([photo_dir / "coffee.jpg"], SearchOptions(k=3, rerank="dba+qe"))[0]
        assert found.rerank == "qe" and all(hits[0].path.endswith("coffee.jpg") for hits in found.hits.values())


@pytest.mark.parametrize("rerank", ["qe", "dba", "dba+qe"])
def test_reranked_searches_are_the_evaluations_reranking(crops_engine, rerank):
    """The app's alpha-QE and DBA give what the evaluation scores: the same top 10 (the query's own row
    left out) for each model, Fused and RRF, from the stored vectors and DBA vectors kept by indexing."""
    engine, files = crops_engine
    ids = sorted(engine.models["resnet50"].store.all_ids())
    vectors = {m: np.stack([v for _, v in sorted(engine.models[m].store.vectors(ids).items())]) for m in engine.models}
    databases = {m: dba(v) if Rerank(rerank).augmented else v for m, v in vectors.items()}
    stored_dba = {m: engine.models[m].dba.vectors(ids) for m in engine.models}
    for m in engine.models:  # the DBA collection holds exactly the DBA of the index
        np.testing.assert_allclose(np.stack([stored_dba[m][i] for i in ids]), dba(vectors[m]), atol=1e-5)
    for query in files[::8]:
        row = ids.index(content_id(raw_from_bytes(query.read_bytes(), "").sha256))
        result = engine.search_files([query], SearchOptions(k=11, rerank=rerank))[0]
        similarities = [_similarity(vectors[m][[row]], databases[m], np.array([row]), Rerank(rerank).expands)
                        for m in engine.models]
        expected = {m: np.argsort(-s[0], kind="stable") for m, s in zip(engine.models, similarities)}
        expected |= {"fused": fused_order(similarities)[0], "rrf": rrf_order(similarities)[0]}
        found = {**result.hits, "fused": result.fused, "rrf": result.rrf}
        for mode, order in expected.items():
            shown = [h.id for h in found[mode] if h.id != result.id][:10]
            assert shown == [ids[i] for i in order[:10]], (rerank, mode, query.name)


@pytest.mark.parametrize("turns", [False, True], ids=["query-turns", "indexed-turns"])
def test_the_robust_query_finds_turned_and_mirrored_photos_first(settings, photo_dir, some_photos, tmp_path, turns):
    """Each photo turned by 90 degrees (and one mirrored) finds its original first with the robust option,
    among 32 images; the plain search is shown in the same run for comparison. With SEARCHCORE_TURNS the
    index holds every image's turns, so the query runs through each model once; removing a photo
    removes its turns."""
    with Engine(replace(settings, turns=turns)) as engine:
        engine.index([photo_dir, some_photos])
        edited = []
        for photo in sorted(photo_dir.rglob("*.jpg")):
            image = Image.open(photo)
            for name, turned in (("turned", image.transpose(Image.Transpose.ROTATE_90)),
                                 ("mirrored", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))):
                target = tmp_path / f"{photo.stem}-{name}.jpg"
                turned.save(target, quality=92)
                edited.append((target, photo))
        robust = engine.search_files([e for e, _ in edited], SearchOptions(k=3, robust=True))
        plain = engine.search_files([e for e, _ in edited], SearchOptions(k=3))
        plain_first = 0
        for (query, original), found, without in zip(edited, robust, plain):
            assert found.robust and not without.robust and found.turns_indexed == turns
            assert all(np.ndim(v) == (1 if turns else 2) for v in found.vectors.values())
            for model in ("resnet50", "vgg16"):
                assert found.hits[model][0].path == str(original), (model, query.name)
                plain_first += without.hits[model][0].path == str(original)
            assert found.fused[0].path == str(original) and found.rrf[0].path == str(original)
        assert plain_first < 2 * len(edited)  # the plain search misses some: the option is what finds them
        if turns:
            images = len(PHOTOS) + 24
            assert [m.turns.count() for m in engine.models.values()] == [5 * images] * 2
            assert engine.remove(str(photo_dir / "coffee.jpg")) == 1
            assert [m.turns.count() for m in engine.models.values()] == [5 * (images - 1)] * 2


def test_region_search_finds_quarter_crops_at_least_as_often_and_cleans_up(tmp_path, model_dir):
    """With regional descriptors on, quarter-area crops of the indexed photos, searched on the regions,
    find their photo first at least as often as the plain search does (and for most crops); removing a
    photo removes its regions."""
    settings = settings_in(tmp_path, model_dir, regions=True)
    originals = tmp_path / "originals"
    originals.mkdir()
    crops = []
    for n, name in enumerate(PHOTOS):
        image = Image.open(SAMPLES / name).convert("RGB")
        image.save(originals / f"{Path(name).stem}.jpg", quality=92)
        w, h = image.size
        left, top = (n % 3) * w // 4, (n % 2) * h // 2
        crops.append((tmp_path / f"crop-{Path(name).stem}.jpg", originals / f"{Path(name).stem}.jpg"))
        image.crop((left, top, left + w // 2, top + h // 2)).save(crops[-1][0], quality=92)
    with Engine(settings) as engine:
        others = [p for p in sample_files() if p.name not in PHOTOS]  # the other bundled photos
        assert engine.index([originals, *others]).indexed == len(PHOTOS) + len(others)
        for m in engine.models.values():
            assert m.regions.count() == 30 * (len(PHOTOS) + len(others))
        on_regions = engine.search_files([c for c, _ in crops], SearchOptions(k=1, regions=True))
        plain = engine.search_files([c for c, _ in crops], SearchOptions(k=1))
        for model in ("resnet50", "vgg16"):
            found = sum(r.hits[model][0].path == str(o) for r, (_, o) in zip(on_regions, crops))
            before = sum(r.hits[model][0].path == str(o) for r, (_, o) in zip(plain, crops))
            assert found >= before and found >= len(PHOTOS) - 1, (model, found, before)
        assert on_regions[0].regions and on_regions[0].to_json()["regions"]
        # the same-photo intent matches the regions with the query's turns: a crop turned by 90° too
        turned = [(crop.with_name(f"turned-{crop.name}"), original) for crop, original in crops]
        for (crop, _), (path, _) in zip(crops, turned):
            Image.open(crop).rotate(90, expand=True).save(path, quality=92)
        same = engine.search_files([t for t, _ in turned], Intent.SAME.options(1, regions_indexed=True))
        regions_only = engine.search_files([t for t, _ in turned], SearchOptions(k=1, regions=True))
        for model in ("resnet50", "vgg16"):
            found = sum(r.hits[model][0].path == str(o) for r, (_, o) in zip(same, turned))
            before = sum(r.hits[model][0].path == str(o) for r, (_, o) in zip(regions_only, turned))
            assert found >= before and found >= len(PHOTOS) - 1, (model, found, before)
        assert same[0].robust and same[0].regions
        with pytest.raises(ValueError, match="no re-ranking"):
            engine.search_files([crops[0][0]], SearchOptions(regions=True, rerank="qe"))
        assert engine.remove(str(originals)) == len(PHOTOS)
        for m in engine.models.values():
            assert m.regions.count() == 30 * len(others)


@pytest.mark.parametrize("grid", [(7, 7), (5, 9), (3, 3), (10, 4)])
def test_the_rows_per_image_are_those_of_the_models_own_grid(grid, engine):
    """A model keeps as many region rows per image as region_vectors makes of its own feature grid (a
    count fixed for a 7 x 7 grid would fetch wrong rows and leave orphans on remove for another one);
    both models here have 7 x 7 grids, 30 regions."""
    feature_map = np.random.default_rng(0).random((*grid, 4), dtype=np.float32)
    assert regions_per_image(grid) == len(region_vectors(feature_map))
    assert {m.rows_per_image("regions") for m in engine.models.values()} == {30}


def test_single_model_results_have_lists_of_their_own(engine, photo_dir):
    """With one model there are no fused lists, and each result's empty lists are its own (they were one
    shared pair of lists for every result)."""
    engine.index([photo_dir])
    first, second = engine.search_files([photo_dir / "coffee.jpg", photo_dir / "nested" / "rocket.jpg"],
                                        SearchOptions(k=2), models=["vgg16"])
    first.fused.append(first.hits["vgg16"][0])
    first.rrf.append(first.hits["vgg16"][0])
    assert second.fused == [] and second.rrf == []
