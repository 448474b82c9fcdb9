# `make test` builds the virtual environment from nothing, then runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test lint install clean train

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[torch,dev,envs]'
	touch $@

test: install
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m pytest -q -n 2 --durations=15

lint: install
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m ruff format --check jax_tx torch_ref parity_tests tests experiments

# The default recipe: gtrxl on a T-Maze with a 10-step corridor (about a minute on 2 CPU cores); extra flags via TRAIN_ARGS.
train: install
	$(PY) -m jax_tx.cli train --recipe experiments/recipes/default.json \
		--log-dir runs/default-$$(date +%Y%m%d-%H%M%S) $(TRAIN_ARGS)

clean:
	rm -rf $(VENV)
