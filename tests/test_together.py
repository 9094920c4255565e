"""Several photos as one query (issue 23): the normalised mean of their vectors, through the engine and
the CLI; on Corel photos two photos of a class find that class better than either alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchcore.retrieval.options import SearchOptions
from tests.conftest import labelled_folder, needs_corel, run_cli

SHOWN = 6  # hits counted, the query photos left out


def class_precision(result, photos: list[Path]) -> dict[str, float]:
    """Per model, the share of its first SHOWN hits (the query photos left out) from the photos' class."""
    label, left_out = photos[0].parent.name, {str(p) for p in photos}
    return {model: sum(Path(h.path).parent.name == label for h in [h for h in hits if h.path not in left_out][:SHOWN])
            / SHOWN for model, hits in result.hits.items()}


@needs_corel("crops of one sample photo are too alike")
def test_two_photos_of_a_class_find_it_better_than_either_alone(engine, tmp_path):
    labelled = labelled_folder(tmp_path / "set", classes=5, per_class=10)
    engine.index([labelled])
    options = SearchOptions(k=SHOWN + 2)
    together, alone = [], []
    for folder in sorted(labelled.iterdir()):
        pair = sorted(folder.glob("*.jpg"))[:2]
        found = engine.search_together(pair, options)
        assert found.error is None and found.query == f"{pair[0].name} + {pair[1].name}"
        together.append(class_precision(found, pair))
        alone += [class_precision(engine.search_files([photo], options)[0], pair) for photo in pair]
    mean = {m: (sum(p[m] for p in together) / len(together), sum(p[m] for p in alone) / len(alone))
            for m in engine.models}
    print("class precision at 6, together vs alone:", mean)
    assert all(with_two >= alone_ for with_two, alone_ in mean.values()), mean
    assert sum(with_two - alone_ for with_two, alone_ in mean.values()) > 0, mean


def test_search_together_takes_two_to_five_plain_photos_and_names_a_bad_one(engine, tmp_path, cli_env):
    photos = sorted(labelled_folder(tmp_path / "set", classes=1, per_class=6).rglob("*.jpg"))
    with pytest.raises(ValueError, match="2 to 5 photos, not 1"):
        engine.search_together(photos[:1])
    with pytest.raises(ValueError, match="2 to 5 photos, not 6"):
        engine.search_together(photos)
    with pytest.raises(ValueError, match="no robust or region search"):
        engine.search_together(photos[:2], SearchOptions(robust=True))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    assert "broken.jpg" in engine.search_together([photos[0], broken]).error
    engine.index([photos[0].parent])
    engine.close()  # Milvus Lite's folder, let go for the CLI's process
    out = run_cli(cli_env, "search", str(photos[0]), str(photos[1]), "--together", "--json", "--top-k", "3")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["query"] == f"{photos[0].name} + {photos[1].name}" and len(answer["hits"]["resnet50"]) == 3
