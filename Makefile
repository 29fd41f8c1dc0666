# puhui: the two commands a new machine needs are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
PUHUI := $(BIN)/puhui
PYTEST_ARGS ?=

.PHONY: install run test check lint bench bench-spark bench-quick clean

$(UV):
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"

# `make test` and `make bench` add Spark (PySpark and pandas, from the package index); `make run`
# does not need it. `--inexact` keeps what another target installed.
EXTRAS ?=
test bench bench-spark: EXTRAS = --extra spark

install: $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --quiet --compile-bytecode $(EXTRAS)
	@echo "puhui installed: $(PUHUI)"

run: install
	BIN=$(BIN) scripts/demo
	$(PUHUI) serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install
	scripts/ensure-system-deps postgres curl chromium java
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -n 2 --durations=25 $(PYTEST_ARGS)

bench: install
	scripts/ensure-system-deps postgres
	$(BIN)/python -m bench.ingest --records 1000000
	$(BIN)/python -m bench.groups
	$(BIN)/python -m bench.api --seconds 10 --connections 64 --workers 2
	$(BIN)/python -m bench.api --seconds 10 --connections 64 --workers 2 --sqlite
	$(BIN)/python -m bench.redeem --seconds 10 --clients 1 8 16
	$(BIN)/python -m bench.dashboard --records 1000000
	$(BIN)/python -m bench.dashboard --records 1000000 --postgres
	$(BIN)/python -m bench.fraud --citizens 2000
	$(BIN)/python -m bench.market --citizens 20000 --days 25
	$(BIN)/python -m bench.restate --citizens 20000 --days 25
	$(BIN)/python -m bench.federation --claims 300000

bench-spark: install
	scripts/ensure-system-deps java
	$(BIN)/python -m bench.spark --records 10000000

bench-quick: install
	$(BIN)/python -m bench.ingest --records 100000 --sqlite-only

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
