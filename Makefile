# Every target creates .venv on first use, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.example.yaml

.PHONY: run test lint typecheck unit check clean

$(BIN)/krwatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/krwatch
	$(BIN)/krwatch run -c $(CONFIG)

check: $(BIN)/krwatch
	$(BIN)/krwatch check -c $(CONFIG)

lint: $(BIN)/krwatch
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(BIN)/krwatch
	$(BIN)/mypy

unit: $(BIN)/krwatch
	$(BIN)/pytest -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) build *.egg-info
