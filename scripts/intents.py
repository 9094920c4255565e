"""Each search intent (and the plain search) measured on both tasks it could serve, through the app's own
search path (Engine.search_files):

    python scripts/intents.py FOLDER [--queries 200] [--originals 100] [--seed 0] [--precision int8]

FOLDER is a labelled set (one sub-folder per class, such as corel1k). It is indexed with regions into a
fresh Milvus Lite. Then:
  * similar photos: a seeded sample of --queries photos searches the index; mAP@100 of the photos of
    its class (itself left out) per list;
  * the same photo: --originals photos get the seeded edits of scripts/robustness.py (turns, a crop,
    JPEG, colour, text…); each edit searches the index, and R@1 is the share that finds its original first.
Prints one table (intents by lists and tasks), R@1 per edit kind, and each option's median query time.
"""
from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robustness import images_under, make_edits, parsed, photo_set_parser, place  # noqa: E402  (scripts/)
from searchcore import Engine, Settings  # noqa: E402
from searchcore.inspection.edits import EDITS  # noqa: E402
from searchcore.retrieval.options import Intent, SearchOptions  # noqa: E402

LISTS = ("resnet50", "vgg16", "fused")
DEPTH = 100  # mAP@100: the first 100 hits of each query


def average_precision(found: list[str], relevant: set[str], depth: int = DEPTH) -> float:
    """AP over the first `depth` hits, normalised by the relevant hits there could be (at most depth)."""
    hits, total = 0, 0.0
    for rank, path in enumerate(found[:depth], 1):
        if path in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), depth) if relevant else 0.0


def timed_search(engine: Engine, paths: list[Path], options: SearchOptions) -> tuple[list, float]:
    """The results of one batched search of all paths, and the median time of 20 of them searched alone."""
    results = engine.search_files(paths, options)
    seconds = []
    for path in paths[:20]:
        started = time.perf_counter()
        engine.search_files([path], options)
        seconds.append(time.perf_counter() - started)
    return results, statistics.median(seconds)


def main() -> None:
    parser = photo_set_parser(__doc__, "int8")
    parser.add_argument("--queries", type=int, default=200, help="photos searched for their class")
    parser.add_argument("--originals", type=int, default=100, help="photos edited and searched for")
    args = parsed(parser)
    photos = images_under(args.folder)
    rng = random.Random(args.seed)
    queries = sorted(rng.sample(photos, min(args.queries, len(photos))))
    originals = sorted(rng.sample(photos, min(args.originals, len(photos))))
    by_class: dict[str, set[str]] = {}
    for p in photos:
        by_class.setdefault(p.parent.name, set()).add(str(p))
    options = {"plain": SearchOptions(DEPTH), **{i.label: i.options(DEPTH, True) for i in Intent}}
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(Settings.from_env(), home=Path(tmp), milvus_uri=f"{tmp}/m.db", regions=True,
                           redis_url="", precision=args.precision)
        with Engine(settings) as engine:
            print(f"{len(photos)} photos indexed with regions: {engine.index(photos).summary()}")
            engine.settle()  # DBA vectors current: the DBA intents search with them
            edits = make_edits(originals, Path(tmp) / "edits", args.seed)
            table, per_edit, seconds = {}, {}, {}
            for name, chosen in options.items():
                results, seconds[name] = timed_search(engine, queries, chosen)
                for lst in LISTS:
                    aps = [average_precision([h.path for h in r.lists()[lst] if not r.is_self(h)],
                                             by_class[Path(q).parent.name] - {str(q)})
                           for q, r in zip(queries, results)]
                    table[name, lst, "mAP@100"] = statistics.fmean(aps)
                results, _ = timed_search(engine, [e for *_, e in edits], replace(chosen, k=10))
                for (kind, original, _), r in zip(edits, results):
                    for lst in LISTS:
                        per_edit.setdefault((name, lst, kind), []).append(place(r.lists()[lst], str(original)) == 1)
                for lst in LISTS:
                    table[name, lst, "copy R@1"] = statistics.fmean(
                        v for kind in EDITS for v in per_edit[name, lst, kind])
    print_tables(table, per_edit, seconds, list(options), len(queries), len(edits))


def print_tables(table: dict, per_edit: dict, seconds: dict, names: list[str], queries: int, edits: int) -> None:
    print(f"\n| search | task | {' | '.join(LISTS)} |\n|---|---|{'---|' * len(LISTS)}")
    for name in names:
        for task in ("mAP@100", "copy R@1"):
            print(f"| {name} | {task} | " + " | ".join(f"{table[name, lst, task]:.3f}" for lst in LISTS) + " |")
    print(f"\n({queries} class queries; {edits} edited copies)\n\nfused R@1 per edit:")
    print(f"| edit | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for kind in EDITS:
        print(f"| {kind} | " + " | ".join(f"{statistics.fmean(per_edit[n, 'fused', kind]):.2f}" for n in names) + " |")
    plain = seconds["plain"]
    print("\nmedian query time, one query alone (ratio to plain): " +
          ", ".join(f"{n} {1000 * s:.0f} ms ({s / plain:.2f}x)" for n, s in seconds.items()))


if __name__ == "__main__":
    main()
