"""Search options are checked once, where they are made, with messages that name the choices."""
from __future__ import annotations

import re

import pytest

from searchcore.config import check_models
from searchcore.retrieval.options import MAX_TOP_K, Intent, Rerank, SearchOptions


def test_options_are_typed_and_checked_when_made():
    options = SearchOptions(k=5, rerank="dba+qe")
    assert options.rerank is Rerank.DBA_QE and options.rerank.expands and options.rerank.augmented
    assert not Rerank.QE.augmented and not Rerank.DBA.expands and Rerank.NONE == "none"
    for k in (0, MAX_TOP_K + 1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=f"top k must be a whole number from 1 to {MAX_TOP_K}"):
            SearchOptions(k=k)
    with pytest.raises(ValueError, match=re.escape("re-ranking must be one of none, qe, dba, dba+qe, not 'dba+everything'")):
        SearchOptions(rerank="dba+everything")
    with pytest.raises(ValueError, match="choose no re-ranking with it"):
        SearchOptions(regions=True, rerank=Rerank.QE)
    assert SearchOptions(regions=True, robust=True).rerank is Rerank.NONE


def test_an_intent_names_its_options_and_is_named_by_them():
    """Similar photos re-rank with DBA+alpha-QE; the same photo is matched turned and mirrored, and on
    the regions only where the index holds them; options set by hand name their intent, or none."""
    assert Intent.SIMILAR.options(8, True) == SearchOptions(8, Rerank.DBA_QE)
    assert Intent.SAME.options(8, True) == SearchOptions(8, robust=True, regions=True)
    assert Intent.SAME.options(8, False) == SearchOptions(8, robust=True)
    for intent in Intent:
        for regions_indexed in (True, False):
            assert Intent.of(intent.options(30, regions_indexed), regions_indexed) is intent
    assert Intent.of(SearchOptions(5, robust=True), True) is None  # regions are indexed, but not searched
    assert Intent.of(SearchOptions(5, Rerank.QE), False) is None
    assert Intent("same").label == "The same photo, edited"


@pytest.mark.parametrize("names, message", [(["resnet50", "clip"], "unknown model(s) ['clip']"),
                                            ([], "no model named")])
def test_model_names_are_checked_in_one_place_for_the_engine_and_the_cli(names, message):
    with pytest.raises(ValueError, match=re.escape(message) + ".*choose from resnet50, vgg16"):
        check_models(names)
    assert check_models(["vgg16"]) == ("vgg16",)


def test_a_writable_persistent_folder_holds_everything_and_a_space_is_public(tmp_path, monkeypatch):
    """A Space with persistent storage mounts /data: models, the index and the cache go there, so a
    restart reuses them; a Space (SPACE_ID) is a public page."""
    from searchcore.config import Settings

    monkeypatch.setenv("SEARCHCORE_PERSISTENT_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert settings.home == tmp_path / "searchcore" and settings.model_dir == tmp_path / "searchcore" / "models"
    assert settings.milvus_uri == str(tmp_path / "searchcore" / "milvus.db") and not settings.public
    monkeypatch.setenv("SEARCHCORE_PERSISTENT_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("SPACE_ID", "someone/image-search")
    settings = Settings.from_env()
    assert settings.home.parts[-2:] == (".cache", "searchcore") and settings.public
