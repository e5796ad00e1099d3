# Two commands on a fresh machine: `make demo` and `make test`.
# Every install goes through constraints.txt (torch pinned: on a CPU-only machine pip then takes
# the local CPU wheel instead of downloading CUDA packages).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test test-integration lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/cvae demo --out demo-runs

# Default tier (< 90 s on 2 cores): everything but `integration` and `slow` (pyproject addopts).
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# Real trainings: full MNIST epochs, the paper networks, the full default `cvae eval`.
test-integration: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m integration

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) demo-runs .pytest_cache
