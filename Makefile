# gdk-geo: `make run` brings both nodes up, `make test` runs every test, `make test-fast` the
# unit tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint format bench bytecode clean

# Create the venv when absent and (re)install when pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Python caches bytecode by itself, unless PYTHONDONTWRITEBYTECODE is set (some container
# and CI images set it): then every `invoke` compiled our modules from source again.
# Compiled here, they are read from __pycache__ whatever that variable says.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q gdk_geo bench testkit tasks.py > /dev/null

run: bytecode
	$(BIN)/invoke geo.setup

# The suite waits on containers and services more than it computes, so it runs in a few
# processes even on 2 cores; each test file stays in one process (its fixtures are shared).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# tests/unit alone: no Docker engine, no services, no network; under a minute on 2 cores.
# Hypothesis tests draw FUZZ_SCALE of their examples here (tests/support/fuzzing.py).
FUZZ_SCALE ?= 0.2
test-fast: $(STAMP)
	GDK_GEO_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/pytest -q tests/unit -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bytecode
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
