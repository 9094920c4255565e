"""Settings read from environment variables (one place, one prefix: SEARCHCORE_)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Sequence

from .files.demo import demo_folder


@dataclass(frozen=True)
class ModelSpec:
    """What names a model everywhere: its id (files, collections, API), its label on the page, the Keras
    application it is exported from, and its close-match level: the cosine that best separates photo
    pairs of one class from pairs of two (scripts/close_match.py; docs/benchmarks.md). A third model is
    one more line in MODEL_SPECS."""

    name: str
    label: str
    keras_application: str
    close_match: float = 0.5


MODEL_SPECS: tuple[ModelSpec, ...] = (ModelSpec("resnet50", "ResNet50", "ResNet50", close_match=0.55),
                                      ModelSpec("vgg16", "VGG16", "VGG16", close_match=0.60))
MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODEL_SPECS)
SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in MODEL_SPECS}


def check_models(names: Sequence[str]) -> tuple[str, ...]:
    """The names, if they are one or more known models; otherwise a ValueError that names the choices."""
    unknown = [n for n in names if n not in SPECS]
    if unknown or not names:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}" if unknown
                         else f"no model named; choose from {', '.join(MODEL_NAMES)}")
    return tuple(names)


def check_patience(text: str) -> float:
    """SEARCHCORE_MILVUS_PATIENCE: a finite number of seconds, 0 or more (nan would retry for ever)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"SEARCHCORE_MILVUS_PATIENCE must be a number of seconds, 0 or more, not {text!r}")
    return seconds


# fp32: the exported model; int8: statically quantized from it (models/quantize.py), about 3x faster on CPU.
PRECISIONS: tuple[str, ...] = ("fp32", "int8")


HNSW_M_RANGE = (2, 2048)
HNSW_EF_CONSTRUCTION_RANGE = (1, 2**31 - 1)


def check_hnsw(m: object, ef_construction: object) -> None:
    """HNSW build parameters in Milvus' ranges, or ValueError: a bad index saved by Milvus Lite breaks the
    collection's next load, so they are checked before anything is opened or created."""
    for label, value, (low, high) in (("M", m, HNSW_M_RANGE),
                                      ("efConstruction", ef_construction, HNSW_EF_CONSTRUCTION_RANGE)):
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"HNSW {label}={value!r} is outside [{low}, {high}]")


class IndexType(str, Enum):
    """The vector index of a new collection (SEARCHCORE_INDEX_TYPE), with its build and search parameters.
    HNSW: the most recall per millisecond, the vectors in memory in full plus the graph; IVF_SQ8: a quarter
    of the memory, a little less recall; DISKANN (a Milvus server only): the vectors on disk, for more
    images than memory holds (docs/benchmarks.md has the scale table)."""

    HNSW = "HNSW"
    IVF_SQ8 = "IVF_SQ8"
    DISKANN = "DISKANN"

    @classmethod
    def of(cls, value: str, milvus_uri: str) -> "IndexType":
        try:
            chosen = cls(value.upper())
        except ValueError:
            raise ValueError(f"SEARCHCORE_INDEX_TYPE must be one of {', '.join(t.value for t in cls)}, "
                             f"not {value!r}") from None
        if chosen is cls.DISKANN and "://" not in milvus_uri:
            raise ValueError("DISKANN needs a Milvus server (SEARCHCORE_MILVUS_URI=http://…); Milvus Lite has "
                             "HNSW and IVF_SQ8")
        return chosen

    def build_params(self, hnsw_m: int, hnsw_ef_construction: int) -> dict:
        if self is IndexType.HNSW:
            check_hnsw(hnsw_m, hnsw_ef_construction)
            return {"M": hnsw_m, "efConstruction": hnsw_ef_construction}
        return {"nlist": IVF_NLIST} if self is IndexType.IVF_SQ8 else {}

    def search_params(self, k: int, filtered: bool = False) -> dict:
        """What a search of k hits asks of this index: HNSW's ef and DISKANN's search list at least k.
        A search filtered to a folder has a wider beam: with a narrow one, Milvus Lite's filtered HNSW
        missed some of the folder's nearest rows (docs/benchmarks.md)."""
        ef = max(FILTERED_BEAM, k) if filtered else max(64, k)
        return {IndexType.HNSW: {"ef": ef}, IndexType.IVF_SQ8: {"nprobe": IVF_NPROBE * (1 + filtered)},
                IndexType.DISKANN: {"search_list": max(100, k)}}[self]


IVF_NLIST, IVF_NPROBE = 1024, 32  # recall@10 0.98 at 1M vectors (docs/benchmarks.md)
FILTERED_BEAM = 4096  # ef of a search within a folder larger than store.EXACT_ROWS (docs/benchmarks.md)


def model_path(model_dir: Path, name: str, precision: str) -> Path:
    """Where a model's build of this precision lives: model_dir/resnet50, model_dir/resnet50-int8."""
    return model_dir / (name if precision == "fp32" else f"{name}-{precision}")


def configure_logging() -> None:
    """INFO to stderr for searchcore; the chatty start-up logs of faiss, Milvus Lite and httpx quieted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss.loader", "milvus_lite", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pymilvus logs every failed reconnect with a full traceback; searchcore reports one clear line instead
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def default_home() -> Path:
    """Where everything lives when SEARCHCORE_HOME is not set: under the persistent folder when it is
    writable (a Space with persistent storage mounts /data; SEARCHCORE_PERSISTENT_DIR names another,
    empty for none), so that a restart reuses the models, the index and the cache; else the user's cache."""
    persistent = os.environ.get("SEARCHCORE_PERSISTENT_DIR", "/data")
    if persistent and Path(persistent).is_dir() and os.access(persistent, os.W_OK):
        return Path(persistent) / "searchcore"
    return Path.home() / ".cache" / "searchcore"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SEARCHCORE_{name}", default)


def _flag(name: str) -> bool:
    return _env(name, "0").lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Where models, vectors and cached embeddings live, and the engine's limits."""

    home: Path
    model_dir: Path
    milvus_uri: str
    milvus_token: str
    milvus_timeout: float
    collection_prefix: str
    redis_url: str
    redis_prefix: str
    cache_ttl_seconds: int
    max_pixels: int
    hnsw_m: int
    hnsw_ef_construction: int
    batch_size: int
    decode_workers: int
    regions: bool = False
    turns: bool = False  # index each image also turned and mirrored: the robust option then runs one image
    precision: str = "fp32"
    evaluations: Path | None = None  # where evaluation vectors are kept; None: home/evaluations
    milvus_patience: float = 300.0  # seconds an index run tries a failing Milvus call again
    public: bool = False  # a public page (a Hugging Face Space): visitors change nothing, name no server path
    eval_sets: tuple[Path, ...] = ()  # labelled folders the Evaluate tab offers (SEARCHCORE_EVAL_SETS)
    demo_url: str = ""  # a zip or tar of a labelled photo folder, fetched and indexed at start-up
    index_type: IndexType = IndexType.HNSW  # of a collection created from now on; one made before keeps its own

    @property
    def demo_set(self) -> Path | None:
        """Where the demo collection of SEARCHCORE_DEMO_URL is extracted; None without one."""
        return demo_folder(self.home, self.demo_url) if self.demo_url else None

    @property
    def labelled_sets(self) -> tuple[Path, ...]:
        """The labelled folders Evaluate offers by name: the demo collection first, then the configured sets."""
        return (*([self.demo_set] if self.demo_set else []), *self.eval_sets)

    @property
    def evaluations_dir(self) -> Path:
        return self.evaluations or self.home / "evaluations"

    def model_path(self, name: str) -> Path:
        return model_path(self.model_dir, name, self.precision)

    def collection(self, name: str, kind: str = "") -> str:
        """A model's collection of a kind ("": the vectors, "dba_", "regions_", "turns_"). Builds of another
        precision get their own collections, so fp32 and int8 vectors never mix."""
        suffix = "" if self.precision == "fp32" else f"_{self.precision}"
        return f"{self.collection_prefix}{kind}{name}{suffix}"

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Defaults, then SEARCHCORE_* variables, then explicit keyword overrides."""
        home = Path(_env("HOME", str(default_home()))).expanduser()
        settings = cls(
            home=home,
            model_dir=Path(_env("MODEL_DIR", str(home / "models"))).expanduser(),
            milvus_uri=_env("MILVUS_URI", str(home / "milvus.db")),
            milvus_token=_env("MILVUS_TOKEN", ""),
            milvus_timeout=float(_env("MILVUS_TIMEOUT", "10")),
            milvus_patience=check_patience(_env("MILVUS_PATIENCE", "300")),
            collection_prefix=_env("COLLECTION_PREFIX", "images_"),
            redis_url=_env("REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_prefix=_env("REDIS_PREFIX", "searchcore:"),
            cache_ttl_seconds=int(_env("CACHE_TTL", str(30 * 24 * 3600))),
            max_pixels=int(_env("MAX_PIXELS", str(50_000_000))),
            hnsw_m=int(_env("HNSW_M", "16")),
            hnsw_ef_construction=int(_env("HNSW_EF_CONSTRUCTION", "200")),
            batch_size=int(_env("BATCH_SIZE", "16")),
            decode_workers=int(_env("DECODE_WORKERS", "2")),
            regions=_flag("REGIONS"),
            turns=_flag("TURNS"),
            precision=_env("PRECISION", "fp32"),
            evaluations=Path(_env("EVAL_DIR", "")).expanduser() if _env("EVAL_DIR", "") else None,
            public=_flag("PUBLIC") or bool(os.environ.get("SPACE_ID")),
            eval_sets=tuple(Path(p).expanduser() for p in _env("EVAL_SETS", "").split(os.pathsep) if p),
            demo_url=_env("DEMO_URL", ""),
            index_type=IndexType.of(_env("INDEX_TYPE", "HNSW"), _env("MILVUS_URI", str(home / "milvus.db"))),
        )
        settings = replace(settings, **overrides) if overrides else settings
        check_hnsw(settings.hnsw_m, settings.hnsw_ef_construction)
        if settings.precision not in PRECISIONS:
            raise ValueError(f"SEARCHCORE_PRECISION must be one of {', '.join(PRECISIONS)}, "
                             f"not {settings.precision!r}")
        return settings
