"""Install the dashboard's front-end files from npm into src/voicewatch/web/static/vendor/.

One definition used by ``make assets`` and by the wheel's build step
(``setup.py``): ``npm ci`` from ``package.json`` and its lock file, then a
copy of the four files the pages load. No CDN: voicewatch serves them itself.
Fails loudly (exit 1, one line) when npm is missing or fails, so a wheel is
never built without its scripts.

Example: python vendor_assets.py          # install unless already there
         python vendor_assets.py --force  # run npm ci and copy again
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENDOR = ROOT / "src" / "voicewatch" / "web" / "static" / "vendor"
#: node_modules path -> file name in VENDOR (web/assets.py lists the same names)
COPIES: dict[str, str] = {
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "htmx-ext-sse/dist/sse.min.js": "sse.min.js",
    "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "uplot/dist/uPlot.min.css": "uPlot.min.css",
}


class AssetsError(RuntimeError):
    """npm is missing or failed: the dashboard's files could not be installed."""


def present(vendor: Path = VENDOR) -> bool:
    return all(
        (vendor / name).is_file() and (vendor / name).stat().st_size for name in COPIES.values()
    )


def install(root: Path = ROOT, vendor: Path = VENDOR, *, force: bool = False) -> None:
    """``npm ci`` + copy, unless every file is already in ``vendor`` (and not ``force``)."""
    if present(vendor) and not force:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise AssetsError(
            f"{vendor} lacks the dashboard's htmx/uPlot files and npm is not on PATH:"
            " install Node.js/npm (or build from a checkout where `make assets` ran)"
        )
    if not (root / "package-lock.json").is_file():
        raise AssetsError(f"no package-lock.json in {root}: cannot install the front-end files")
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise AssetsError(f"`npm ci` failed (exit {done.returncode}): {last[:300]}")
    vendor.mkdir(parents=True, exist_ok=True)
    for source, name in COPIES.items():
        path = root / "node_modules" / source
        if not path.is_file():
            raise AssetsError(f"npm ci did not install {source}")
        shutil.copyfile(path, vendor / name)
    (vendor / ".installed").touch()


if __name__ == "__main__":
    try:
        install(force="--force" in sys.argv[1:])
    except AssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
