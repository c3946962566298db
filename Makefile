# netcalc: `make run` serves with a demo account, `make test` runs the suite.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NETCALC := $(VENV)/bin/netcalc
PORT ?= 8000
# Stamps of the last install: pip runs again only when pyproject.toml
# changes (the install is editable, so source edits need none).
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test

.PHONY: run test bench lint install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(INSTALLED)

install: $(INSTALLED)

run: install
	$(NETCALC) migrate
	$(NETCALC) demo --port $(PORT)
	$(NETCALC) serve --port $(PORT)

test: $(TEST_INSTALLED)
	$(PY) -m pytest

lint: $(TEST_INSTALLED)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: install
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi
	$(PY) bench/run.py --soak-minutes 10 --output docs/benchmarks.md
