# `make test` builds the virtual environment from nothing, then runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test lint install clean train install-mettagrid test-mettagrid train-mettagrid

# mettagrid's own venv (its gymnasium 1.4 conflicts with gymnax's <1.4 pin): jax_tx + mettagrid, no gymnax, no torch.
MG_VENV ?= .venv-mettagrid
MG_PY := $(MG_VENV)/bin/python

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[torch,dev,envs]'
	touch $@

test: install install-mettagrid
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m pytest -q -n 2 --durations=15
	$(MAKE) test-mettagrid

install-mettagrid: $(MG_VENV)/.installed

$(MG_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MG_VENV)
	$(MG_PY) -m pip install --quiet --upgrade pip
	$(MG_PY) -m pip install --quiet -e '.[dev,mettagrid]'
	touch $@

# The mettagrid adapter's tests (they skip in .venv, which has no mettagrid); mettagrid's importnb plugin breaks pytest.
test-mettagrid: install-mettagrid
	$(MG_PY) -m pytest -q -p no:importnb -p no:cacheprovider tests/test_mettagrid.py

lint: install
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m ruff format --check jax_tx torch_ref parity_tests tests experiments

# The default recipe: gtrxl on a T-Maze with a 10-step corridor (about a minute on 2 CPU cores); extra flags via TRAIN_ARGS.
train: install
	$(PY) -m jax_tx.cli train --recipe experiments/recipes/default.json \
		--log-dir runs/default-$$(date +%Y%m%d-%H%M%S) $(TRAIN_ARGS)

# A gtrxl with the token encoder on the small mettagrid arena (host loop); a few minutes on 2 CPU cores.
train-mettagrid: install-mettagrid
	$(MG_PY) experiments/train_mettagrid.py --recipe experiments/recipes/mettagrid_arena__gtrxl.json \
		--log-dir runs/mettagrid-$$(date +%Y%m%d-%H%M%S) $(TRAIN_ARGS)

clean:
	rm -rf $(VENV) $(MG_VENV)
