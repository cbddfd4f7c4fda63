# The README's commands. Each creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := $(CURDIR)/.demo
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test test-soak bench install dev clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-soak: $(STAMP)
	ZOHO_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m soak

demo: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python scripts/demo.py --dir $(DEMO_DIR)

dev: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@echo "Dagster UI on http://127.0.0.1:3000 (DAGSTER_HOME=$(DAGSTER_HOME))"
	$(BIN)/dagster dev

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
