"""The model cache: build each model once (in its own export subprocess), then leave it alone."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .manifest import ModelManifest, is_built

log = logging.getLogger("searchcore")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEIGHT_SOURCES = ("registry", "keras")
WEIGHT_SOURCE_FAILED = 3  # models.export's exit code when weights could not be had


class BuildError(RuntimeError):
    pass


def build_models(model_dir: Path, names: Sequence[str], weights: str = "auto", force: bool = False,
                 weights_cache: Path | None = None) -> dict[str, ModelManifest]:
    """Make sure every named model is built and verified; `auto` tries the registry, then Keras."""
    weights_cache = weights_cache or model_dir.parent / "weights"
    built = {}
    for name in names:
        directory = model_dir / name
        if is_built(directory) and not force:
            manifest = ModelManifest.load(directory)
            log.info("%s: up to date (%s weights, onnx %s)", name, manifest.weights["source"],
                     manifest.onnx_sha256[:12])
        else:
            manifest = _export(name, directory, weights, weights_cache)
        built[name] = manifest
    return built


def _export(name: str, directory: Path, weights: str, cache: Path) -> ModelManifest:
    tried = []
    for source in WEIGHT_SOURCES if weights == "auto" else (weights,):
        log.info("%s: building with %s weights", name, source)
        cmd = [sys.executable, "-m", "models.export", "--model", name, "--weights", source,
               "--out", str(directory), "--cache", str(cache)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        code = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT).returncode
        if code == 0 and is_built(directory):
            manifest = ModelManifest.load(directory)
            log.info("%s: built from %s weights (%s)", name, source, manifest.weights.get("package"))
            return manifest
        tried.append(f"{source} (exit {code})")
        if code != WEIGHT_SOURCE_FAILED:
            break
    raise BuildError(f"{name}: build failed with {', '.join(tried)}; export needs "
                     f"`pip install -r models/requirements.txt`")
