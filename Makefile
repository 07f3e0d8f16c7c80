# Two commands on a fresh machine: `make run` and `make test`. Both build .venv from the
# pinned requirements.lock first (and refresh it when pyproject.toml or the lock changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: install run test lint typecheck unit bench demo clean browser

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/o2a up

# The suite waits on servers far more than it computes, so it runs in three processes
# (pytest-xdist); the tests that measure CPU per workflow activation then run on their own.
test: lint typecheck browser
	$(BIN)/pytest -n 3 --dist worksteal -m "not measured"
	$(BIN)/pytest -m measured

# The console's browser tests drive Debian's chromium (Playwright's Python package, never its
# own browser downloads): installed from the distribution when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/o2a demo

bench: $(STAMP)
	$(BIN)/o2a bench -n 200 -c 40 --compare-bare --compare-plain

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
