"""The page served while the app cannot be built yet (its models are being built, Milvus does not
answer): one line says what the app waits for, kept current by a timer, and the page loads the app
by itself once the app is up. A failure that ends the wait stays on the page, with its reason."""
from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

import gradio as gr
from starlette.middleware import Middleware

from ..retrying import retried
from ..storage.store import StoreUnavailableError
from .limits import BodyLimit
from .upload import MAX_UPLOAD_BYTES

log = logging.getLogger("searchcore.app")
TITLE = "Image search: starting"
MAX_WAIT = 30.0  # seconds between two tries to reach Milvus, at most
T = TypeVar("T")
# Until the app's own page answers at this address (its title differs), ask every 2 s, then load it.
RELOAD_WHEN_UP = f"""<script>
setInterval(async () => {{
  try {{ const config = await (await fetch('config', {{cache: 'no-store'}})).json();
         if (config.title && config.title !== {TITLE!r}) location.reload(); }} catch (e) {{}}
}}, 2000);
</script>"""


class Waiting:
    """The waiting page: say() sets its line (and logs it), serve() starts it, close() stops it."""

    def __init__(self) -> None:
        self.line = "Starting…"
        self.page: gr.Blocks | None = None

    def say(self, line: str) -> None:
        self.line = line
        log.info("%s", line)

    def serve(self, **launch: object) -> None:
        with gr.Blocks(title=TITLE) as page:
            gr.Markdown("# Search images by image — ResNet50 and VGG16 side by side")
            shown = gr.Markdown(self.line, elem_id="waiting")
            gr.Timer(1.0).tick(lambda: self.line, None, shown, show_progress="hidden")
            page.load(lambda: self.line, None, shown, show_progress="hidden")
        page.launch(prevent_thread_lock=True, quiet=True, head=RELOAD_WHEN_UP, max_file_size=MAX_UPLOAD_BYTES,
                    app_kwargs={"middleware": [Middleware(BodyLimit)]}, **launch)
        self.page = page

    def fail(self, reason: str) -> None:
        """The line says why the app cannot start; the page stays until the process is stopped."""
        self.say(f"⚠️ The app cannot start: {reason}")
        threading.Event().wait()

    def close(self) -> None:
        if self.page is not None:
            self.page.close()


def with_backoff(attempt: Callable[[], T], what: str, say: Callable[[str], None]) -> T:
    """attempt() until it does not raise StoreUnavailableError, waiting twice as long each time (at most
    MAX_WAIT seconds), saying each time what it waits for."""
    def said(exc: Exception, wait: float, tries: int) -> None:
        say(f"Waiting for {what}: {exc}. Trying again in {wait:.0f} s (try {tries}).")
    return retried(attempt, lambda exc: isinstance(exc, StoreUnavailableError), said, 1.0, MAX_WAIT)
