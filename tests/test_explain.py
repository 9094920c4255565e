"""Why a hit matched: the spatial-similarity heat grids, on hand-made maps and on real crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore import Engine
from searchcore.inspection.explain import pooled, spatial_similarity
from searchcore.retrieval.options import SearchOptions
from tests.conftest import PHOTOS, SAMPLES, settings_in

CROP_SIDE = 0.6  # each side of the crop, as a share of the photo's: 36% of its area


def test_heat_sits_at_each_channels_arg_max_and_sums_to_the_cosine():
    query, hit = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    query[0, 0] = [3, 0]  # channel 0 peaks top left in the query ...
    query[1, 1] = [0, 4]  # ... channel 1 bottom right
    hit[0, 1] = [1, 0]
    hit[1, 0] = [0, 1]
    result = spatial_similarity(query, hit)
    # unit vectors q = (.6, .8), h = (.707, .707): contributions .424 (channel 0) and .566 (channel 1)
    assert result.cosine == pytest.approx(0.6 * 0.7071 + 0.8 * 0.7071, abs=1e-4)
    np.testing.assert_allclose(result.query_heat, [[0.4243, 0], [0, 0.5657]], atol=1e-4)
    np.testing.assert_allclose(result.hit_heat, [[0, 0.4243], [0.5657, 0]], atol=1e-4)


def test_heat_of_real_sized_maps_sums_to_the_pooled_cosine():
    rng = np.random.default_rng(0)
    query, hit = rng.random((7, 7, 512)), rng.random((7, 7, 512))
    result = spatial_similarity(query, hit)
    cosine = float(pooled(query)[0] @ pooled(hit)[0])
    assert result.query_heat.sum() == pytest.approx(cosine) and result.hit_heat.sum() == pytest.approx(cosine)


def box_cover(box: tuple[int, int, int, int], size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """The share of each grid cell that lies inside the box (the model sees the whole photo, resized)."""
    def along(low, high, cells, length):
        edges = np.arange(cells + 1) / cells * length
        return np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None) / (length / cells)
    return along(box[1], box[3], grid[0], size[1])[:, None] * along(box[0], box[2], grid[1], size[0])[None]


def test_a_crop_finds_its_photo_and_the_hits_heat_lies_in_the_cropped_region(tmp_path, model_dir):
    """A crop of 36% of each photo's area, at one of four places, queries the indexed photos. Heat spread
    evenly would put 36% of its mass in the crop box. Measured with these models and photos: ResNet50
    0.54 of the mass on average and above 36% for 8 of 8 photos; VGG16 0.45 and 7 of 8 (the Hubble deep
    field, all stars, is the exception). So: on average at least 1.15x the even share, and above the even
    share for at least 6 of the 8 photos, for both models. Heat put anywhere else (at the query's arg-max
    places, say) falls to about the even share and fails this."""
    full, crops = tmp_path / "full", tmp_path / "crops"
    full.mkdir(), crops.mkdir()
    boxes = {}
    corners = [(0.0, 0.0), (1.0, 0.2), (0.3, 1.0), (1.0, 1.0)]  # where the crop sits, as a share of the free room
    for n, name in enumerate(PHOTOS):
        image = Image.open(SAMPLES / name).convert("RGB")
        w, h = image.size
        fx, fy = corners[n % len(corners)]
        left, top = int(fx * (1 - CROP_SIDE) * w), int(fy * (1 - CROP_SIDE) * h)
        boxes[Path(name).stem] = ((left, top, left + int(CROP_SIDE * w), top + int(CROP_SIDE * h)), (w, h))
        image.save(full / f"{Path(name).stem}.jpg", quality=92)
        image.crop(boxes[Path(name).stem][0]).save(crops / f"{Path(name).stem}.jpg", quality=92)
    settings = settings_in(tmp_path, model_dir)
    inside: dict[str, list[float]] = {}
    with Engine(settings) as engine:
        assert engine.index([full]).indexed == len(PHOTOS)
        queries = sorted(crops.iterdir())
        for query, result in zip(queries, engine.search_files(queries, SearchOptions(k=1))):
            box, size = boxes[query.stem]
            for model, hits in result.hits.items():
                assert Path(hits[0].path).stem == query.stem, (model, query.name, hits[0].path)
                explained = engine.explain(query, hits[0].path, hits[0].sha256, [full])[model]
                heat = explained.similarity.hit_heat
                assert heat.sum() == pytest.approx(hits[0].cosine, abs=1e-3)
                inside.setdefault(model, []).append(float((heat * box_cover(box, size, heat.shape)).sum() / heat.sum()))
    even = CROP_SIDE ** 2
    for model, shares in inside.items():
        assert np.mean(shares) >= 1.15 * even, (model, shares)
        assert sum(s > even for s in shares) >= 6, (model, shares)


def test_explain_reads_the_hit_only_under_the_roots_and_unchanged(tmp_path, model_dir, photo_dir):
    settings = settings_in(tmp_path, model_dir)
    photo = next(photo_dir.glob("*.jpg"))
    with Engine(settings) as engine:
        engine.index([photo_dir])
        hit = engine.search_files([photo], SearchOptions(k=1))[0].hits["vgg16"][0]
        with pytest.raises(ValueError, match="outside the allowed folders"):
            engine.explain(photo, hit.path, hit.sha256, [tmp_path / "elsewhere"])
        Path(hit.path).write_bytes(photo.read_bytes() + b"\0")
        with pytest.raises(ValueError, match="changed since it was indexed"):
            engine.explain(photo, hit.path, hit.sha256, [photo_dir])
