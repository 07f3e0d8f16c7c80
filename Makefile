# Two commands on a fresh machine: `make run` and `make test`. Both build .venv from the
# pinned requirements.lock first (and refresh it when pyproject.toml or the lock changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: install run test lint typecheck unit bench demo clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/o2a up

test: lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/o2a demo

bench: $(STAMP)
	$(BIN)/o2a bench -n 200 -c 40 --compare-bare

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
