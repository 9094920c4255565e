"""Near-duplicate finding on planted copies: each model, fused, and perceptual hashes, on the same photos.

    pip install imagehash          # for this script only, not the app
    python scripts/duplicates_bench.py FOLDER [--originals 100] [--seed 0] [--precision int8]

From FOLDER's photos (such as corel1k) two disjoint sets of --originals photos get edited copies: resized
to half, re-saved as JPEG at quality 50, cropped to 90% of the area, mirrored, and in grayscale. Each set
and all of FOLDER's photos go into a fresh Milvus Lite. The threshold of each method is the one that
maximises F1 over pairs on the first set (tuning); precision, recall and F1 are then measured on the
second (test). A pair is two images in one found group; a true pair, an original and a copy of it, or
two copies of one original. Also printed: the share of each kind of copy grouped with its original,
and the groups that hold images of two different originals.
"""
from __future__ import annotations

import io
import itertools
import random
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robustness import images_under, parsed, photo_set_parser  # noqa: E402  (scripts/, this script's folder)
from searchcore import Engine, Settings  # noqa: E402
from searchcore.inspection.edits import crop  # noqa: E402
from searchcore.retrieval.duplicates import FUSED_SCORING, groups_at, scored_pairs  # noqa: E402

COPIES = ("resized", "jpeg q50", "crop 90%", "mirrored", "grayscale")
HASHES = ("phash", "dhash", "whash")


def copy_of(image: Image.Image, kind: str, rng: random.Random) -> bytes:
    if kind == "resized":
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    elif kind == "crop 90%":
        image = crop(image, 0.9, rng)
    elif kind == "mirrored":
        image = ImageOps.mirror(image)
    elif kind == "grayscale":
        image = ImageOps.grayscale(image).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=50 if kind == "jpeg q50" else 92)
    return out.getvalue()


@dataclass
class Planted:
    """A folder of copies, and the truth: each image's path -> its original (originals map to themselves)."""

    folder: Path
    original_of: dict[str, str]
    kind_of: dict[str, str]

    def true_pairs(self) -> set[tuple[str, str]]:
        groups: dict[str, list[str]] = {}
        for path, original in self.original_of.items():
            groups.setdefault(original, []).append(path)
        return {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(members, 2)}


def plant(originals: list[Path], folder: Path, seed: int) -> Planted:
    rng = random.Random(seed)
    planted = Planted(folder, {str(o): str(o) for o in originals}, {})
    for n, original in enumerate(originals):
        image = Image.open(original).convert("RGB")
        for kind in COPIES:
            path = folder / kind.replace(" ", "-").replace("%", "") / f"{n:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(copy_of(image, kind, rng))
            planted.original_of[str(path)], planted.kind_of[str(path)] = str(original), kind
    return planted


def measure(groups: list[list[str]], planted: Planted) -> dict[str, float]:
    """Pair precision, recall and F1; per kind of copy the share grouped with its original; impure groups."""
    found = {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}
    true = planted.true_pairs()
    hit = len(found & true)
    precision, recall = hit / len(found) if found else 1.0, hit / len(true)
    together = {tuple(sorted(p)) for p in found}
    per_kind = {kind: np.mean([tuple(sorted((path, planted.original_of[path]))) in together
                               for path, k in planted.kind_of.items() if k == kind]) for kind in COPIES}
    impure = sum(len({planted.original_of.get(p, p) for p in g}) > 1 for g in groups)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "impure": impure, **per_kind}


def vector_scores(engine: Engine, scoring: str) -> dict[tuple[str, str], float]:
    """Every candidate pair's score under one model or fused, by path."""
    stores = {m: engine.models[m].store for m in (engine.models if scoring == FUSED_SCORING else [scoring])}
    scores, rows = scored_pairs(stores)
    return {(rows[a][0], rows[b][0]): s for (a, b), s in scores.items()}


def hash_scores(paths: list[str], method: str) -> dict[tuple[str, str], float]:
    """Every pair's similarity under a perceptual hash: 1 - Hamming distance / 64, all pairs (the
    hashes are small), kept when at least 0.75."""
    import imagehash
    bits = np.array([getattr(imagehash, method)(Image.open(p)).hash.flatten() for p in paths], dtype=np.uint8)
    scores = {}
    for i in range(len(paths)):
        similarity = 1 - (bits[i + 1:] != bits[i]).sum(axis=1) / bits.shape[1]
        for j in np.nonzero(similarity >= 0.75)[0]:
            scores[paths[i], paths[i + 1 + j]] = float(similarity[j])
    return scores


def best_threshold(scores: dict[tuple[str, str], float], planted: Planted, grid: np.ndarray) -> float:
    return max(grid, key=lambda t: measure(groups_at(scores, t), planted)["f1"])


def main() -> None:
    parser = photo_set_parser(__doc__, "int8")
    parser.add_argument("--originals", type=int, default=100)
    args = parsed(parser)
    photos = images_under(args.folder)
    chosen = random.Random(args.seed).sample(photos, 2 * args.originals)
    scores: dict[str, dict[str, dict]] = {"tune": {}, "test": {}}
    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, name in enumerate(("tune", "test")):
            planted = plant(sorted(chosen[n::2]), Path(tmp) / name, args.seed + n)
            sets[name] = planted
            settings = replace(Settings.from_env(), home=Path(tmp) / f"home-{name}",
                               milvus_uri=f"{tmp}/{name}.db", redis_url="", precision=args.precision)
            with Engine(settings) as engine:
                print(f"{name}: {engine.index([*photos, planted.folder]).summary()}")
                engine.settle()  # every collection sealed before the scoring reads them
                for scoring in (*engine.models, FUSED_SCORING):
                    scores[name][scoring] = vector_scores(engine, scoring)
            paths = [*map(str, photos), *(p for p in planted.kind_of)]
            for method in HASHES:
                scores[name][method] = hash_scores(paths, method)
    print(f"\n{args.originals} originals per set, {len(COPIES)} copies each, among {len(photos)} photos; "
          f"threshold tuned on one set, measured on the other ({args.precision})\n")
    print("| method | threshold | precision | recall | F1 | " + " | ".join(COPIES) + " | impure groups |")
    print("|---|---|---|---|---|" + "---|" * len(COPIES) + "---|")
    for method in scores["tune"]:
        grid = np.arange(0.75, 1.0, 1 / 64) if method in HASHES else np.arange(0.70, 0.995, 0.005)
        threshold = best_threshold(scores["tune"][method], sets["tune"], grid)
        m = measure(groups_at(scores["test"][method], threshold), sets["test"])
        print(f"| {method} | {threshold:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
              + " | ".join(f"{m[k]:.2f}" for k in COPIES) + f" | {m['impure']} |")


if __name__ == "__main__":
    main()
