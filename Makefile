# Event Stream Engine — local commands. `make demo` and `make test` are the two
# set-up commands: each installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQS := requirements.txt requirements-dev.txt requirements-test.txt
export PYTHONPATH := $(CURDIR)

.PHONY: install test test-full lint up down status demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: $(REQS) pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(addprefix -r ,$(REQS))
	@# requirements.txt installs a copy of shared/ (as deployed); locally the
	@# working tree itself is what runs, so reinstall the project editable.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Unit, then integration, then e2e, stopping at the first failing layer; the
# fault suite and the event burst at their small default sizes (< 8 min).
test: install
	$(PY) -m local.run_tests

# The same layers with the fault suite and the burst at full size (2,000
# recipients, 5,000 events); `make test-full SOAK=1` adds the long soak.
test-full: install
	$(PY) -m local.run_tests --full $(if $(filter 1,$(SOAK)),--soak)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

up: install
	$(PY) -m local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m local.stack down; else echo "nothing to stop"; fi

status:
	$(PY) -m local.stack status

demo: install
	$(PY) -m local.demo

# Every benchmark, one after another; each prints its own figures.
bench: install
	$(PY) bench/bench_render.py
	$(PY) bench/bench_log_mask.py
	$(PY) bench/bench_import.py
	$(PY) bench/bench_segments.py
	$(PY) bench/bench_webhooks.py
	$(PY) bench/bench_events.py
	$(PY) bench/bench_pacing.py
	$(PY) bench/bench_pipeline.py --recipients 2000 10000 20000
	$(PY) bench/bench_load_api.py
	$(PY) bench/bench_load_webhooks.py

clean: down
	rm -rf .local

# The long soak (about 30 min): rounds of a campaign and an event burst at once
# under every fault class, on one stack never reset between rounds.
.PHONY: soak
soak: install
	ESE_SOAK=1 ESE_TEST_FULL=1 $(PY) -m pytest -p no:cacheprovider tests/e2e/test_faults.py -k soak
