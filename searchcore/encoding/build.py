"""The model cache: build each model once (in its own export subprocess, and its int8 build in a
quantization subprocess), then leave it alone."""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..config import MODEL_NAMES, PRECISIONS, SPECS, Settings, configure_logging, model_path
from .manifest import ModelManifest, is_built

log = logging.getLogger("searchcore")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WEIGHT_SOURCES = ("registry", "keras")
WEIGHT_SOURCE_FAILED = 3  # models.export's exit code when weights could not be had


class BuildError(RuntimeError):
    pass


def build_models(model_dir: Path, names: Sequence[str], weights: str = "auto", force: bool = False,
                 weights_cache: Path | None = None, precisions: Sequence[str] = ("fp32",),
                 say: Callable[[str], None] | None = None) -> dict[tuple[str, str], ModelManifest]:
    """Make sure every named model is built and verified in each precision, keyed (name, precision);
    `auto` tries the registry, then Keras. An int8 build is quantized from the fp32 build. `say` hears
    a line before each build ("Building the ResNet50 model (1 of 2)…")."""
    weights_cache = weights_cache or model_dir.parent / "weights"
    built = {}
    for number, name in enumerate(names, 1):
        fp32_dir = model_dir / name
        for precision in ("fp32", *(p for p in precisions if p != "fp32")):
            directory = model_path(model_dir, name, precision)
            if is_built(directory) and not force:
                manifest = ModelManifest.load(directory)
                log.info("%s %s: up to date (%s weights, onnx %s)", name, precision, manifest.weights["source"],
                         manifest.onnx_sha256[:12])
            else:
                if say:
                    step = "exporting it from its weights" if precision == "fp32" else f"quantizing it to {precision}"
                    say(f"Building the {SPECS[name].label} model ({number} of {len(names)}): {step}…")
                manifest = (_export(name, directory, weights, weights_cache) if precision == "fp32"
                            else _quantize(name, fp32_dir, directory))
            if precision in precisions:
                built[name, precision] = manifest
    return built


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}


def _quantize(name: str, fp32_dir: Path, directory: Path) -> ModelManifest:
    log.info("%s: quantizing to int8", name)
    cmd = [sys.executable, "-m", "models.quantize", "--fp32", str(fp32_dir), "--out", str(directory)]
    code = subprocess.run(cmd, env=_subprocess_env(), cwd=PROJECT_ROOT).returncode
    if code != 0 or not is_built(directory):
        raise BuildError(f"{name}: int8 quantization failed (exit {code}); it needs "
                         f"`pip install -r models/requirements.txt`")
    return ModelManifest.load(directory)


def _export(name: str, directory: Path, weights: str, cache: Path) -> ModelManifest:
    tried = []
    for source in WEIGHT_SOURCES if weights == "auto" else (weights,):
        log.info("%s: building with %s weights", name, source)
        cmd = [sys.executable, "-m", "models.export", "--model", name, "--weights", source,
               "--out", str(directory), "--cache", str(cache)]
        code = subprocess.run(cmd, env=_subprocess_env(), cwd=PROJECT_ROOT).returncode
        if code == 0 and is_built(directory):
            manifest = ModelManifest.load(directory)
            log.info("%s: built from %s weights (%s)", name, source, manifest.weights.get("package"))
            return manifest
        tried.append(f"{source} (exit {code})")
        if code != WEIGHT_SOURCE_FAILED:
            break
    raise BuildError(f"{name}: build failed with {', '.join(tried)}; export needs "
                     f"`pip install -r models/requirements.txt`")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m searchcore.encoding.build [--precision int8]`: every model into SEARCHCORE_MODEL_DIR. It
    needs only files/ and encoding/ of the package, so the Dockerfile's export stage copies no more."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        build_models(Settings.from_env().model_dir, MODEL_NAMES, precisions=(args.precision,))
    except BuildError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
