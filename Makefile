# The two commands people type first are `make run` and `make test`; every other
# target here is a step they depend on or a tool for developers.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench crds testbed system-deps e2e-kind clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

## make run: paper trading on this laptop, dashboard on http://localhost:8000
run: $(STAMP)
	$(BIN)/kubetrade local --strategies examples/strategies

## make test: installs what the tests need, builds/caches the control plane, runs every test
test: $(STAMP) system-deps testbed
	BIN=$(BIN) scripts/test.sh

system-deps:
	scripts/system-deps.sh

testbed: $(STAMP)
	$(BIN)/python -m tests.bed build

lint: $(STAMP)
	$(BIN)/ruff check kubetrade tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## make bench: every benchmark under bench/, each printing its figures (run from the repo root
## as modules, so they can reuse the test bed's servers and fakes)
bench: $(STAMP) system-deps testbed
	@for b in bench/*.py; do m=$$(basename $$b .py); echo "== bench/$$m.py"; \
		$(BIN)/python -m bench.$$m || exit 1; done

crds: $(STAMP)
	$(BIN)/python -m kubetrade.resources.crdgen crds
	$(BIN)/python -m kubetrade.operator.rbac --chart-rules charts/kubetrade/files/rbac-rules.yaml
	$(BIN)/python -m kubetrade.operator.admission > charts/kubetrade/files/admission.yaml

e2e-kind: $(STAMP)
	scripts/e2e-kind.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
