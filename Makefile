# Two commands do all the set-up:  `make train` (then trains)  and  `make test` (then tests).
# CPU machines install the CPU build of torch through constraints/cpu.txt; on a GPU machine use
# `make setup CONSTRAINTS=` to let pip pick the CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints/cpu.txt
ARGS ?= env=pong
STAMP := $(VENV)/.installed

.PHONY: setup train test lint postgres
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

# The sweep tests start a real PostgreSQL server; install Debian's package where we can (root),
# otherwise that one test is skipped (CI sets DQN_REQUIRE_POSTGRES=1 to make it fail instead).
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "note: PostgreSQL is not installed; the PostgreSQL sweep test will be skipped"

test: lint postgres
	$(BIN)/python -m pytest $(PYTEST_ARGS)
