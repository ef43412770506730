# mmtrack-serve. `make demo` is the main job, `make test` the tests; each sets
# up what it needs. The first setup builds mmcv-full (9-13 minutes on 2 cores);
# later ones reuse the cached wheel and take seconds.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmtrack-serve-setup
PYTEST_ARGS ?=

.PHONY: setup java demo test test-fast lint clean

setup: java
	@bash scripts/setup_env.sh

# TorchServe needs Java 17+.
java:
	@bash scripts/ensure_java.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

# the core and CLI tests only (no TorchServe)
test-fast: setup
	$(PY) -m pytest tests -m "not server" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_output .pytest_cache
