# netcalc: `make run` serves with a demo account, `make test` runs the suite.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NETCALC := $(VENV)/bin/netcalc
PORT ?= 8000

.PHONY: run test bench lint install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e .

run: install
	$(NETCALC) migrate
	$(NETCALC) demo --port $(PORT)
	$(NETCALC) serve --port $(PORT)

test: $(PY)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pytest

lint: $(PY)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: install
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi
	$(PY) bench/run.py --soak-minutes 10 --output docs/benchmarks.md
