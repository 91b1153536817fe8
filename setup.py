"""The wheel carries the dashboard: ``build_py`` installs the npm front-end files first.

Everything else about the package is in pyproject.toml. When
``src/voicewatch/web/static/vendor/`` lacks htmx or uPlot (a clean clone, an
sdist), the build runs the same ``npm ci`` + copy as ``make assets``
(``vendor_assets.py``) and fails loudly if it cannot, so no wheel is ever
built whose pages would load no scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vendor_assets


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        try:
            vendor_assets.install()
        except vendor_assets.AssetsError as exc:
            raise SystemExit(
                f"error: cannot build voicewatch without its dashboard files: {exc}"
            ) from exc
        self.__dict__.pop("data_files", None)  # list the package data again, vendor included
        super().run()


setup(cmdclass={"build_py": BuildPyWithAssets})
