# Two commands matter (see README): `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-under-load lint typecheck unit system-deps bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python examples/demo.py

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(INSTALLED)
	$(BIN)/mypy
	$(BIN)/lint-imports

# Servers and the browser the tests run for real (PostgreSQL, Chromium), from Debian's packages.
system-deps:
	scripts/system-deps

unit: $(INSTALLED) system-deps
	$(BIN)/python -m pytest

test: lint typecheck unit

# The whole suite with every core kept busy by other processes: no test may depend on speed.
test-under-load: $(INSTALLED)
	$(BIN)/python tests/run_under_load.py $(MAKE) test

bench: $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]" || echo "bench extras failed to install; tools that are missing are reported as such"
	$(BIN)/python -m benchmarks --update-docs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
