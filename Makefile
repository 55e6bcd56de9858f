# bana-mm: `make demo` and `make test` install what is missing, then run.
#
#   make demo   install if needed, then the pipeline on the embedded dataset
#   make test   install if needed, then the test suite
#   make lint   flake8, isort and yapf checks (settings in setup.cfg)
#   make format isort + yapf in place (the autofix of `make lint`)
#   make wheel-smoke  build the wheel, install it into a fresh venv and run
#               it from outside the checkout (tests/test_packaging.py)
#   make benchmark  the figures of docs/benchmarks.md (about an hour on 2
#               cores); make benchmark-quick: the same scripts, tiny settings
#
# Variables: PYTHON (interpreter for the venv), VENV (its folder),
# TORCH (pip specs of torch and torchvision; GPU users: install their own
# matching pair first and set TORCH=), WHEELS (a folder of prebuilt mmcv /
# pydensecrf2 wheels for that torch, used when it exists).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
WHEELS ?= ../shared/wheels/torch2.14.1
DEMO_DIR ?= work_dirs/demo
DEMO_STAGES ?= 1,2,3

PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := -c requirements/constraints.txt
LINT_PATHS := bana_mm configs tools tests setup.py
FIND_LINKS := $(if $(wildcard $(WHEELS)/*.whl),--find-links $(WHEELS),)
MMCV_WHEEL := $(firstword $(wildcard $(WHEELS)/mmcv-2.1.0-*.whl))
STAMP := $(VENV)/.bana-mm-installed

.PHONY: install demo test lint format wheel-smoke benchmark benchmark-quick \
	clean-demo

install: $(STAMP)

$(STAMP): setup.py $(wildcard requirements/*.txt)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(CONSTRAINTS) "setuptools<82" wheel
	$(if $(TORCH),$(PIP) install $(CONSTRAINTS) $(TORCH),)
	# mmcv 2.1.0 with ops: a prebuilt wheel from $(WHEELS) when present,
	# otherwise a ~22 min compile against the installed torch
	# (requirements/build_mmcv.sh: torch >= 2.14 needs C++20).
	$(if $(MMCV_WHEEL),$(PIP) install $(CONSTRAINTS) $(MMCV_WHEEL),\
		bash requirements/build_mmcv.sh $(PY))
	$(PIP) install $(CONSTRAINTS) $(FIND_LINKS) -e ".[tests]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_pipeline.py --work-dir $(DEMO_DIR) --preset tiny \
		--stages $(DEMO_STAGES)

.PHONY: demo-mdh
# the MDH job (docs/mdh.md) on the embedded dataset
demo-mdh: $(STAMP)
	$(PY) tools/run_pipeline.py --method mdh --work-dir $(DEMO_DIR)-mdh \
		--preset tiny

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff -r $(LINT_PATHS)

format: $(STAMP)
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf -i -r $(LINT_PATHS)

wheel-smoke: $(STAMP)
	$(PY) -m pytest -q tests/test_packaging.py

benchmark: $(STAMP)
	$(PY) tools/benchmarks/stage2_cost.py
	$(PY) tools/benchmarks/train_step_cost.py

benchmark-quick: $(STAMP)
	$(PY) tools/benchmarks/stage2_cost.py --quick
	$(PY) tools/benchmarks/train_step_cost.py --quick

clean-demo:
	rm -rf $(DEMO_DIR)
