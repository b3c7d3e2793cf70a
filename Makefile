# The two entry points the README promises, and the checks CI runs.
.PHONY: run test setup setup-test lint typecheck pytest pytest-no-speedups bench

# Where `make run` keeps its database and files; `SEGMAP_DATA=/elsewhere make run` moves it.
SEGMAP_DATA ?= data

run: setup
	.venv/bin/segmap serve --demo --data "$(SEGMAP_DATA)"

test: setup-test lint typecheck pytest pytest-no-speedups

setup:
	scripts/setup.sh

setup-test:
	scripts/system-deps.sh
	scripts/setup.sh test

lint:
	.venv/bin/ruff check src tests benchmarks scripts
	.venv/bin/ruff format --check src tests benchmarks scripts

typecheck:
	.venv/bin/mypy

pytest:
	.venv/bin/pytest -q

# The conversion tests again with the performance tricks off (forked RTSTRUCT parsing,
# heap freezing, helper and writer threads; see docs/convert.md), so that correctness
# never depends on them.
CONVERSION_TESTS = tests/test_convert_*.py tests/test_pipeline_*.py tests/test_batch_cli.py

pytest-no-speedups:
	SEGMAP_NO_SPEEDUPS=1 .venv/bin/pytest -q -p no:cacheprovider $(CONVERSION_TESTS)

bench:
	.venv/bin/python benchmarks/convert_bench.py
	.venv/bin/python benchmarks/serve_bench.py
