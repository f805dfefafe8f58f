# Two commands matter (see README): `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-under-load lint typecheck unit system-deps bench bench-smoke clean labextension lab-unit wheel

# The JupyterLab extension: TypeScript in labextension/, built with JupyterLab's builder into
# labextension/build/ (shipped in the wheel as share/jupyter/labextensions/ipysession).
LABEXT := labextension/build/package.json
LABEXT_SRC := $(wildcard labextension/src/*.ts) labextension/style/index.css \
	labextension/style/index.js labextension/package.json labextension/tsconfig.json
NODE_MODULES := labextension/node_modules/.package-lock.json

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

$(NODE_MODULES): labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

# Quiet unless it fails: the builder's webpack report goes to build/labextension.log.
$(LABEXT): $(NODE_MODULES) $(LABEXT_SRC) | $(INSTALLED)
	@mkdir -p build
	@cd labextension && npx tsc && node node_modules/@jupyterlab/builder/lib/build-labextension.js \
		--core-path "$$(../$(BIN)/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')" \
		. > ../build/labextension.log 2>&1 || { cat ../build/labextension.log; exit 1; }
	@echo "labextension: built $(LABEXT)"

labextension: $(LABEXT)

# The extension's TypeScript unit tests (jest, as JupyterLab's extension template uses).
lab-unit: $(NODE_MODULES)
	cd labextension && npx jest --silent

unit: $(INSTALLED) system-deps labextension lab-unit
	$(BIN)/python -m pytest

# A wheel with the prebuilt extension in it.
wheel: labextension
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .

test: lint typecheck unit

# The whole suite with every core kept busy by other processes: no test may depend on speed.
test-under-load: $(INSTALLED)
	$(BIN)/python tests/run_under_load.py $(MAKE) test

bench: $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]" || echo "bench extras failed to install; tools that are missing are reported as such"
	$(BIN)/python -m benchmarks --update-docs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* \
		labextension/build labextension/lib labextension/node_modules labextension/tsconfig.tsbuildinfo
