# The two entry points the README promises, and the checks CI runs.
.PHONY: run test setup setup-test lint typecheck pytest bench

# Where `make run` keeps its database and files; `SEGMAP_DATA=/elsewhere make run` moves it.
SEGMAP_DATA ?= data

run: setup
	.venv/bin/segmap serve --demo --data "$(SEGMAP_DATA)"

test: setup-test lint typecheck pytest

setup:
	scripts/setup.sh

setup-test:
	scripts/system-deps.sh
	scripts/setup.sh test

lint:
	.venv/bin/ruff check src tests benchmarks

typecheck:
	.venv/bin/mypy

pytest:
	.venv/bin/pytest -q

bench:
	.venv/bin/python benchmarks/convert_bench.py
	.venv/bin/python benchmarks/serve_bench.py
