# The two commands: `make run` and `make test` (README). Both install what is missing and are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TSM := $(VENV)/bin/tsm
export TSM_HOME ?= $(CURDIR)/var
DEB_PACKAGES := python3-venv python3-dev gcc softhsm2 opensc pcscd libpcsclite-dev swig vsmartcard-vpcd pcsc-tools curl chromium
BIND ?= 127.0.0.1:8000

.PHONY: run test deps venv init lint typecheck unit kat bench clean

run: init
	@if [ "$$TSM_DEMO" = 1 ]; then $(TSM) demo; fi
	$(TSM) serve --bind $(BIND)

test: init lint typecheck unit

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml | deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: deps $(VENV)/.installed

init: venv
	$(TSM) init

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy globalplatform storage keyservice hsm_profiles softhsm ceremonies tsm_core cardsim web tsm bench

unit: venv
	$(VENV)/bin/pytest -q

kat: venv
	$(TSM) kat tests/vectors

bench: venv
	$(PY) bench/keyservice_overhead.py
	$(PY) bench/gp_sessions.py
	$(PY) bench/audited_open.py --processes 2
	$(PY) bench/transport.py
	$(PY) bench/provisioning.py
	$(PY) bench/lifecycle.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
