"""The front-end files the pages load, and the start-up check that they are there.

htmx, its SSE extension and uPlot come from the npm registry (``make assets``,
or the wheel's build step in ``vendor_assets.py``) into ``static/vendor/``.
A server without them would serve pages whose scripts 404: dead buttons and
empty charts. So ``create_app`` refuses to start instead, with one line that
says how to get them.
"""

from __future__ import annotations

from pathlib import Path

from voicewatch.web.templating import STATIC_DIR

#: Served as /static/vendor/<name>; the same list as vendor_assets.py copies.
VENDOR_FILES: tuple[str, ...] = (
    "htmx.min.js",
    "sse.min.js",
    "uPlot.iife.min.js",
    "uPlot.min.css",
)


class MissingAssets(RuntimeError):
    """The dashboard's front-end files are not installed."""


def check_vendor_assets(static_dir: Path = STATIC_DIR) -> None:
    """Raise ``MissingAssets`` (one line) when a vendor file is missing or empty."""
    vendor = static_dir / "vendor"
    missing = [
        n for n in VENDOR_FILES if not (vendor / n).is_file() or not (vendor / n).stat().st_size
    ]
    if missing:
        raise MissingAssets(
            f"the dashboard's front-end files are missing from {vendor} ({', '.join(missing)}):"
            " run `make assets` in a checkout, or install a wheel built with them"
        )
