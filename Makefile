# `make test` builds the virtual environment from nothing, then runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test lint install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[torch,dev,envs]'
	touch $@

test: install
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check jax_tx torch_ref parity_tests tests experiments
	$(PY) -m ruff format --check jax_tx torch_ref parity_tests tests experiments

clean:
	rm -rf $(VENV)
