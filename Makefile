# cutout — developer and operator entry points.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_MODEL ?= u2netp

.PHONY: run test lint models bench clean

# Create the virtual environment when missing; reinstall when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## The whole service: drop images into ./inbox, cut-outs appear in ./outbox (Ctrl-C stops).
run: $(STAMP)
	$(BIN)/cutout models pull
	$(BIN)/cutout up

## The whole test suite against the real model (u2netp), pulled first when missing.
test: $(STAMP) models
	$(BIN)/python -m pytest

models: $(STAMP)
	$(BIN)/cutout models pull $(TEST_MODEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
