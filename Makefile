# mmtrack-serve. `make demo` is the main job, `make test` the tests; each sets
# up what it needs. The first setup builds mmcv-full (9-13 minutes on 2 cores);
# later ones reuse the cached wheel and take seconds.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmtrack-serve-setup
PYTEST_ARGS ?=

.PHONY: setup java demo demo-model test test-fast clean

setup: java
	@bash scripts/setup_env.sh
	@bash scripts/install_services.sh  # chromium for tests/test_browser.py (root on Debian)

# TorchServe needs Java 17+.
java:
	@bash scripts/ensure_java.sh

# The committed demo model (demo/) served and scored; DEMO_ARGS="--videos 2" for fewer videos.
demo: setup
	$(PY) scripts/demo.py $(DEMO_ARGS)

# Retrains the demo model into demo/ (about 15 minutes on 2 idle cores) and
# prints its held-out figures beside the committed ones (demo/figures.json).
demo-model: setup
	bash scripts/train_demo_model.sh $(DEMO_MODEL_ARGS)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-py312

# The second stack users run: Python 3.12 with numpy 1.26 in .venv-py312 (its
# own mmcv-full build, cached like the first), on the core, tracker, serving,
# real-weights parity and evaluation tests (about 10 minutes after its setup);
# then the fast trackers against mmtrack's under numpy 2's promotion rules
# (NEP 50, which numpy 1.26 emulates), as on a GPU host with numpy 2.
PY312_VENV ?= .venv-py312
PY312_TESTS ?= tests/test_numpy_compat.py tests/test_core.py tests/test_trackers.py \
	tests/test_serving.py tests/test_real_weights.py tests/training/test_eval_mot.py
NEP50_TESTS ?= kalman or many_seeds or periodic or sorttracker_equals
.PHONY: test-py312
test-py312: java
	@PYTHON=python3.12 VENV=$(PY312_VENV) NUMPY=1.26.4 bash scripts/setup_env.sh
	$(PY312_VENV)/bin/python -m pytest $(PY312_TESTS) $(PYTEST_ARGS)
	NPY_PROMOTION_STATE=weak $(PY312_VENV)/bin/python -m pytest tests/test_trackers.py \
		-k "$(NEP50_TESTS)" $(PYTEST_ARGS)

# the core and CLI tests only (no TorchServe)
test-fast: setup
	$(PY) -m pytest tests -m "not server" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(PY312_VENV) .venv-peers demo_output bench_output .pytest_cache

# Speed and memory figures, printed and written to BENCHMARKS.md (about 17
# minutes on 2 cores). Run it on an idle machine. BENCH_ARGS=--quick: a smoke
# run (CI's), report to bench_output/BENCHMARKS-quick.md, BENCHMARKS.md untouched.
.PHONY: bench
bench: setup bench-peers
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# Roboflow's trackers for the tracker-step table, in .venv-peers (numpy 2; never
# in the runtime). Without it the bench runs on and says why the row is missing.
.PHONY: bench-peers
bench-peers:
	bash scripts/setup_bench_peers.sh || echo "bench: no peer trackers: scripts/setup_bench_peers.sh failed"

# Every tracking config in the mmtrack wheel, random weights: load, 3 frames,
# checkpoint, mmtrack2torchserve, served once; one row each in MODEL_ZOO.md
# (opt-in, about 1.5 hours on 2 cores; ZOO_ARGS="--only bytetrack" for some).
.PHONY: zoo
zoo: setup
	$(PY) scripts/model_zoo.py $(ZOO_ARGS)

# 200 sequential requests against one worker; figures to soak_results.json
# (`make test` runs the same test with 20 requests)
.PHONY: soak
soak: setup
	MMTRACK_SERVE_SOAK=200 $(PY) -m pytest tests/test_soak.py -s -q

# The container image (docs/docker.md). `make docker` builds the stack image
# (docker/stack/) and on it the server image from docker/serve/, with docker,
# or with podman where no Docker engine runs (DOCKER_VARIANT=cpu for the
# CPU-only image). `make docker-test` (root on Debian: installs podman, makes a
# local Debian base image) builds the CPU image and runs tests/test_docker.py
# against it (CI runs it); `make docker-lint` runs hadolint.
.PHONY: docker docker-lint docker-test

docker:
	@bash scripts/docker_build.sh

docker-lint:
	@bash scripts/docker_lint.sh

docker-test: setup
	@PY=$(abspath $(PY)) bash scripts/docker_test.sh
