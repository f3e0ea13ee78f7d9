# Two commands do all the set-up:  `make train` (then trains)  and  `make test` (then tests).
# CPU machines install the CPU build of torch through constraints/cpu.txt; on a GPU machine use
# `make setup CONSTRAINTS=` to let pip pick the CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints/cpu.txt
ARGS ?= env=pong
STAMP := $(VENV)/.installed

.PHONY: setup train test lint
setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
