# The README's commands. Each creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := $(CURDIR)/.demo
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test test-soak bench install dev month clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test-soak: $(STAMP)
	ZOHO_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m soak

demo: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python scripts/demo.py --dir $(DEMO_DIR)

# the emulator from the demo's state and clock + `dagster dev` with the demo's settings; a demo first if none yet
dev: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python scripts/dev.py --dir $(DEMO_DIR)

# one month of the provider's business on the demo database, and ZOHO's clock moved on (needs `make dev` running)
month: $(STAMP)
	@test -f $(DEMO_DIR)/.env || { echo "no demo yet: run make demo (or make dev) first"; exit 2; }
	set -a; . $(DEMO_DIR)/.env; set +a; $(BIN)/zoho-pipeline demo month

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
