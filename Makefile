# cutout — developer and operator entry points.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
TEST_MODEL ?= u2netp
QUALITY_MODEL ?= u2net
QUALITY_SET ?= ../shared/evalsets/pascal_s
QUALITY_PRECISIONS ?= bf16,int8
QUALITY_TRUTH ?= auto
BENCH_MODEL ?= u2net
BENCH_ARGS ?=

.PHONY: run test lint models bench bench-gateway quality clean

# Create the virtual environment when missing; reinstall when pyproject.toml changes.
# `make run` needs only the runtime; tests, lint and the harnesses add the dev extras.
$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## The whole service: drop images into ./inbox, cut-outs appear in ./outbox (Ctrl-C stops).
run: $(RUNTIME)
	$(BIN)/cutout models pull
	$(BIN)/cutout up

## The whole test suite against the real model (u2netp), pulled first when missing.
test: $(DEV) models
	$(BIN)/python -m pytest

## Fault injection at full size: 500 files, with and without Redis persistence.
soak: $(DEV) models
	SOAK_FILES=500 $(BIN)/python -m pytest -m soak -s tests/integration/soak
	SOAK_FILES=500 SOAK_REDIS_PERSISTENCE=none $(BIN)/python -m pytest -m soak -s tests/integration/soak

models: $(RUNTIME)
	$(BIN)/cutout models pull $(TEST_MODEL)

## Mask quality on human ground truth (images/ + masks/), our modes beside rembg's:
## a table, bench/out/quality/results.json and report.html.
quality: $(DEV)
	@test -d $(QUALITY_SET) || { echo "$(QUALITY_SET): no evaluation set there; one is images/*.jpg + masks/*.png (same stem). Point at another: make quality QUALITY_SET=/path/to/set" >&2; exit 2; }
	$(BIN)/cutout models pull $(QUALITY_MODEL)
	$(BIN)/python bench/quality.py $(QUALITY_SET) --model $(QUALITY_MODEL) --precisions $(QUALITY_PRECISIONS) --truth $(QUALITY_TRUTH)

## Speed against the model alone and against rembg, alternating, in one run (~8 min; README
## "Performance"): a table, bench/out/speed.md and speed.json. BENCH_ARGS=--quick: ~2 min.
bench: $(DEV)
	$(BIN)/cutout models pull $(BENCH_MODEL)
	$(BIN)/python -m bench.speed --model $(BENCH_MODEL) $(BENCH_ARGS)

## What the HTTP gateway costs (README "Performance"): 20 concurrent POST /api/remove, its
## added p50 latency against the Client's, its RSS; bench/out/gateway.json. About a minute.
bench-gateway: $(DEV) models
	$(BIN)/python -m bench.gateway --model $(TEST_MODEL)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
