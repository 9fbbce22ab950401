# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
# The example plugin is installed for the tests only, next to (not into) the .venv that `make run` serves.
TEST_PLUGINS := build/test-plugins
FUZZ_EXAMPLES ?= 200

.PHONY: run test bench lint fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_TEST): $(STAMP_RUN) examples/hello-plugin/setup.cfg examples/hello-plugin/gateway_hello.py
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip uninstall --quiet --yes event-gateway-hello 2>/dev/null || true
	rm -rf $(TEST_PLUGINS)
	$(BIN)/pip install --quiet --no-deps --target $(TEST_PLUGINS) examples/hello-plugin
	touch $@

run: $(STAMP_RUN)
	$(BIN)/event-gateway serve

test: $(STAMP_TEST)
	$(BIN)/ruff check .
	PYTHONPATH=$(CURDIR)/$(TEST_PLUGINS) $(BIN)/pytest $(PYTEST_ARGS)

# A longer schemathesis run against a real multi-worker gateway (the suite runs a few examples per route).
fuzz: $(STAMP_TEST)
	PYTHONPATH=$(CURDIR)/$(TEST_PLUGINS) EVENT_GATEWAY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/ops/test_fuzz.py

bench: $(STAMP_TEST)
	$(BIN)/python -m bench

lint: $(STAMP_TEST)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var build *.egg-info
