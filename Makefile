# Two commands on a fresh machine with Python 3.11: `make demo`, then `make test`.
# Each creates the virtual environment from uv.lock on first use.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: install demo refresh test lint ui clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/cs360: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(BIN)/cs360  ## create or update the virtual environment

demo: install  ## generate the demo city's deliveries and run the whole pipeline on them
	$(BIN)/cs360 demo
	$(BIN)/cs360 refresh

refresh: install  ## ingest whatever is in the inboxes and publish a release
	$(BIN)/cs360 refresh

test: install  ## the test suite (real DuckDB files, real dbt, real Dagster runs)
	$(BIN)/ruff check .
	$(BIN)/pytest

# Dagster now points to `dg dev`, from the dagster-dg-cli package, which the locked environment
# does not hold; `dagster dev` starts the same webserver and daemon, so its notice is silenced.
ui: install  ## the Dagster UI with schedules and sensors running, on http://127.0.0.1:3000
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} $(BIN)/python -c \
	  "from cs360_pipeline.instance import ensure_dagster_home; ensure_dagster_home()"
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} PATH=$(CURDIR)/$(BIN):$$PATH \
	  PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:  ## remove runtime data and build artefacts (keeps the inboxes' delivered files)
	rm -rf data dbt_project/target dbt_project/logs
