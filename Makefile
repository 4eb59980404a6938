# One venv for everything; every target below sets it up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint stress bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/luanet run examples/echo.lua

# Types and lint first (settings in pyproject.toml), then the tests.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check luanet tests bench
	$(BIN)/mypy luanet

# Stress-marked tests at full size (the fuzzers for minutes); make test runs
# them at small sizes.
stress: $(STAMP)
	LUANET_STRESS=1 $(BIN)/python -m pytest -q -m stress

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[fast]'  # uvloop, so both loops are measured
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
