# Two commands for a newcomer: `make run` (the Space on http://127.0.0.1:7860) and `make test`.
# Both create .venv from the pinned requirements when it is missing or older than them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# One worker per CPU (pytest-xdist), each owning its CPU (tests/conftest.py); a module's tests stay together.
XDIST ?= -n auto --dist loadfile

.PHONY: run test test-fast test-real bench bench-bulk bench-hostile family-cost audit venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(PY) app.py

test: $(STAMP)
	tools/ensure-chromium
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not real" $(XDIST) $(PYTEST_ARGS)

# Everything but the slow end-to-end tests (no servers in a process of their own, no browser), for edit-test loops.
test-fast: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# Only the acceptance tests on the real weights and data (fetched where the network allows), with a table.
test-real: $(STAMP)
	CLIPDEMO_DOWNLOAD=1 $(PY) -m pytest -m real -rs -o timeout=0 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache

# Speed and memory figures, measured side by side (not part of `make test`). QUICK=1: fewer repetitions.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install -q -r requirements-bench.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench.run $(if $(QUICK),--quick,)

# The CLIP family's CPU figures, measured again and written into the package (the page reads them; commit them).
family-cost: $(BENCH_STAMP)
	$(PY) -m bench.family --publish $(if $(QUICK),--quick,)

# Hostile requests through a real server (issue #34): RSS growth, refusal times, others' /ping and uploads meanwhile.
bench-hostile: $(BENCH_STAMP)
	$(PY) -m bench.hostile $(if $(QUICK),--quick,)

# `python -m clipdemo bulk`'s figures: local vs the evaluation, and Ray Data's 2 actors vs local (R17, R18).
bench-bulk: $(BENCH_STAMP)
	$(PY) -m bench.bulk $(if $(QUICK),--quick,)

# pip-audit over the pinned requirements (CI runs it after the tests).
audit: $(STAMP)
	tools/audit
