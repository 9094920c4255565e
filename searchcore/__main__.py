import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .cli import main  # noqa: E402

sys.exit(main())
