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
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

# the core and CLI tests only (no TorchServe)
test-fast: setup
	$(PY) -m pytest tests -m "not server" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_output bench_output .pytest_cache

# Speed and memory figures, printed and written to BENCHMARKS.md (about 17
# minutes on 2 cores; BENCH_ARGS=--quick for a smoke run). Run it on an idle machine.
.PHONY: bench
bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# 200 sequential requests against one worker; figures to soak_results.json
soak: setup
	MMTRACK_SERVE_SOAK=200 $(PY) -m pytest tests/test_soak.py -s -q

# The container image (docker/serve/, docs/docker.md). `make docker` builds it
# with docker, or with podman where no Docker engine runs (DOCKER_VARIANT=cpu
# for the CPU-only image). `make docker-test` (root on Debian: installs podman,
# makes a local Debian base image) builds the CPU image and runs
# tests/test_docker.py against it; `make docker-lint` runs hadolint.
.PHONY: docker docker-lint docker-test

docker:
	@bash scripts/docker_build.sh

docker-lint:
	@bash scripts/docker_lint.sh

docker-test: setup
	@PY=$(abspath $(PY)) bash scripts/docker_test.sh
