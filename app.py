"""The web app: drag a photo in, see what ResNet50 and VGG16 find, side by side.

The entry point (a Hugging Face Space runs `python app.py`); the page itself is searchcore.web.
    python app.py [--images FOLDER] [--host 127.0.0.1] [--port 7860] [--precision fp32|int8]
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from starlette.middleware import Middleware  # noqa: E402

from searchcore import MODEL_NAMES, Engine, Settings  # noqa: E402
from searchcore.config import PRECISIONS, configure_logging  # noqa: E402
from searchcore.encoding.build import build_models  # noqa: E402
from searchcore.web import build_ui  # noqa: E402
from searchcore.web.assets import CSS, NAME_IMAGES, THEME  # noqa: E402
from searchcore.web.limits import BodyLimit  # noqa: E402
from searchcore.web.startup import StartupIndexing, index_roots  # noqa: E402
from searchcore.web.upload import MAX_UPLOAD_BYTES  # noqa: E402
from searchcore.web.waiting import Waiting, with_backoff  # noqa: E402

log = logging.getLogger("searchcore.app")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="a folder to index before serving")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32, or int8 (about 3x faster on CPU); default: SEARCHCORE_PRECISION, else fp32")
    args = parser.parse_args()
    configure_logging()
    settings = Settings.from_env(**({"precision": args.precision} if args.precision else {}))
    waiting = Waiting()  # a page at once, that says what the app waits for
    waiting.serve(server_name=args.host, server_port=args.port, share=False)
    try:
        build_models(settings.model_dir, MODEL_NAMES, precisions=(settings.precision,), say=waiting.say)
        engine = with_backoff(lambda: Engine(settings), "Milvus", waiting.say)
    except Exception as exc:  # noqa: BLE001 - a build that failed, another build's index: said on the page
        log.exception("the app cannot start")
        waiting.fail(str(exc))
    images = args.images.expanduser().resolve() if args.images else None
    roots = index_roots(settings, images)
    startup = StartupIndexing(engine, images, roots)
    demo, shown = build_ui(engine, roots, startup)
    startup.start()  # after build_ui: Gradio patches tqdm there, and a bar made before the patch breaks under it
    demo.queue(max_size=64, default_concurrency_limit=1)
    waiting.close()
    # Only the folder of shown copies is served: never a root itself (it may hold other files).
    demo.launch(server_name=args.host, server_port=args.port, share=False, allowed_paths=[str(shown.folder)],
                max_file_size=MAX_UPLOAD_BYTES, show_error=True, css=CSS, theme=THEME, js=NAME_IMAGES,
                app_kwargs={"middleware": [Middleware(BodyLimit)]})


if __name__ == "__main__":
    main()
