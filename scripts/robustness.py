"""How well each model and mode finds a photo again after an edit: R@1 and R@10 per edit kind.

    python scripts/robustness.py FOLDER --distractors FOLDER2 [--limit 100] [--seed 0] [--timed 40]
                                 [--precision fp32|int8] [--regions] [--turns]

Indexes FOLDER's photos (the originals) and FOLDER2's (distractors) into a fresh Milvus Lite, makes
seeded edits of the originals (searchcore.inspection.edits), queries with all edits at once per option (one
Milvus search per model) and prints where the original lands, per model and fused list, plain, with
the robust query option (against the indexed turns with --turns, else with the query's own turns),
with DBA+alpha-QE and (with --regions) on regional descriptors. Then it
times --timed edit queries one by one, the options interleaved, and prints each option's median
query time and its ratio to plain.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from searchcore import Engine, Settings  # noqa: E402
from searchcore.config import PRECISIONS, configure_logging  # noqa: E402
from searchcore.files.decode import IMAGE_SUFFIXES  # noqa: E402
from searchcore.inspection.edits import EDITS, apply_edit  # noqa: E402
from searchcore.retrieval.options import COMPARED_OPTIONS, SearchOptions  # noqa: E402

LISTS = ("resnet50", "vgg16", "fused", "rrf")


def images_under(folder: Path) -> list[Path]:
    """Image files under the folder, by absolute path (as the index stores them)."""
    return sorted(Path(os.path.abspath(p)) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def make_edits(originals: list[Path], folder: Path, seed: int) -> list[tuple[str, Path, Path]]:
    """(edit kind, original, edited file) for every original and edit kind, seeded."""
    rng = random.Random(seed)
    made = []
    for n, original in enumerate(originals):
        image = Image.open(original).convert("RGB")
        for kind in EDITS:
            edited = folder / kind.replace(" ", "-") / f"{n:04d}.jpg"
            edited.parent.mkdir(parents=True, exist_ok=True)
            data = apply_edit(image, kind, rng)
            edited.write_bytes(data)
            made.append((kind, original, edited))
    return made


def place(hits, original: str) -> int | None:
    return next((rank for rank, h in enumerate(hits, 1) if h.path == original), None)


def photo_set_parser(doc: str, precision: str) -> argparse.ArgumentParser:
    """The arguments the scripts over a folder of photos share: the folder, --seed and --precision."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=PRECISIONS, default=precision)
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, once searchcore's logging is set up without its INFO lines (the script prints tables)."""
    args = parser.parse_args()
    configure_logging()
    logging.getLogger("searchcore").setLevel(logging.WARNING)
    return args


def main() -> None:
    parser = photo_set_parser(__doc__, "fp32")
    parser.add_argument("--distractors", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=100, help="originals (a seeded sample)")
    parser.add_argument("--regions", action="store_true", help="index regional descriptors, add the regions option")
    parser.add_argument("--turns", action="store_true", help="index every image turned and mirrored too")
    parser.add_argument("--timed", type=int, default=40, help="edit queries timed one by one per option")
    args = parsed(parser)
    originals = images_under(args.folder)
    originals = sorted(random.Random(args.seed).sample(originals, min(args.limit, len(originals))))
    distractors = [p for p in images_under(args.distractors) if p not in set(originals)]
    with tempfile.TemporaryDirectory() as tmp:
        # no embedding cache: every option pays for its inference, so the query times compare fairly
        settings = replace(Settings.from_env(), home=Path(tmp), milvus_uri=f"{tmp}/m.db", regions=args.regions,
                           turns=args.turns, redis_url="", precision=args.precision)
        options = {**COMPARED_OPTIONS, **({"regions": SearchOptions(regions=True)} if args.regions else {})}
        with Engine(settings) as engine:
            report = engine.index(originals + distractors)
            engine.settle()  # DBA vectors current: the DBA options search with them
            print(f"{len(originals)} originals, {len(distractors)} distractors: {report.summary()}")
            edits = make_edits(originals, Path(tmp) / "edits", args.seed)
            found: dict[tuple[str, str, str], list[int | None]] = {}
            for option, chosen in tqdm(options.items(), desc="options, all edits at once", unit="option"):
                for (kind, original, _), result in zip(edits, engine.search_files([e for *_, e in edits], chosen)):
                    lists = result.lists()
                    for name in LISTS:
                        found.setdefault((kind, option, name), []).append(place(lists[name], str(original)))
            seconds: dict[str, list[float]] = {o: [] for o in options}
            timed = random.Random(args.seed).sample(edits, min(args.timed, len(edits)))
            for _, _, edited in tqdm(timed, desc="timed queries, one by one", unit="query"):
                for option, chosen in options.items():
                    started = time.perf_counter()
                    engine.search_files([edited], chosen)
                    seconds[option].append(time.perf_counter() - started)
    print_table(found, list(options))
    plain = statistics.median(seconds["plain"])
    print(f"\nquery time per option ({args.precision}; median over {len(seconds['plain'])} edit queries; ratio to plain):")
    for option, times in seconds.items():
        print(f"  {option:<8} {1000 * statistics.median(times):7.1f} ms   {statistics.median(times) / plain:5.2f}x")


def print_table(found: dict[tuple[str, str, str], list[int | None]], options: list[str]) -> None:
    columns = [(option, name) for option in options for name in LISTS]
    print(f"\nR@1 / R@10 of the original, per edit kind ({len(next(iter(found.values())))} queries each)")
    print(f"{'edit':<18}" + "".join(f"{option + ' ' + name:>18}" for option, name in columns))
    for kind in EDITS:
        cells = []
        for option, name in columns:
            places = found[(kind, option, name)]
            r1 = sum(p == 1 for p in places) / len(places)
            r10 = sum(p is not None and p <= 10 for p in places) / len(places)
            cells.append(f"{r1:.2f} / {r10:.2f}")
        print(f"{kind:<18}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
