# voicewatch — make demo | make test | make bench | make lint
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench soak services venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

services:
	@bash scripts/services.sh

demo: $(STAMP)
	$(VENV)/bin/voicewatch demo

test: $(STAMP) services
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench || true
	$(VENV)/bin/mypy src

bench: $(STAMP) services
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

soak: $(STAMP) services
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
