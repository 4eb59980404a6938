# One venv for everything; every target below sets it up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# what setup.py compiles with mypyc (listed in luanet/_compiled.py): a change
# to one of them reinstalls, which compiles them again
COMPILED := $(shell $(PYTHON) luanet/_compiled.py)

.PHONY: setup run test lint stress bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py luanet/_compiled.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/luanet run examples/echo.lua

# Types and lint first (settings in pyproject.toml), then the tests.
# Everything on the compiled modules, then the tests of what they hold again
# on their source, the version that runs where nothing could compile them.
PURE_TESTS := $(addprefix tests/,test_core.py test_core_lifetime.py test_core_limits.py \
	test_server.py test_lifetime.py test_data.py test_limits.py test_host.py \
	test_fuzz_stateful.py test_docstrings.py test_compiled.py)
test: $(STAMP) lint
	$(BIN)/python -m pytest -q
	LUANET_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q $(PURE_TESTS)

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
	rm -f luanet__mypyc*.so luanet/*.so luanet/core/*.so
