# Two commands do all the set-up:  `make train` (then trains)  and  `make test` (then tests);
# `make docs` builds the documentation site into site/.
#
# torch: TORCH=cpu (default) pins torch (constraints/cpu.txt) and adds PyTorch's CPU wheel index
# when it answers, so pip takes the ~200 MB CPU build instead of PyPI's Linux wheel, which is
# the CUDA build with several GB of NVIDIA libraries. Where that index cannot be reached, pip
# takes torch from its own sources and `make` says so. TORCH=cuda installs pip's default (the
# CUDA build on Linux) for a GPU machine. `make -s pip-args` prints what setup would pass to pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CONSTRAINTS ?= $(if $(filter cpu,$(TORCH)),constraints/cpu.txt,)
EXTRAS ?= dev
ARGS ?= env=pong
STAMP := $(VENV)/.installed

# --extra-index-url (CPU wheels) only for TORCH=cpu and only when the index answers
define pip_args
index=""; \
if [ "$(TORCH)" = cpu ] && [ -n "$(TORCH_CPU_INDEX)" ]; then \
  if curl -sf --max-time 8 -o /dev/null "$(TORCH_CPU_INDEX)/torch/"; then \
    index="--extra-index-url $(TORCH_CPU_INDEX)"; \
    echo "torch: CPU build from $(TORCH_CPU_INDEX)" >&2; \
  else \
    echo "torch: $(TORCH_CPU_INDEX) does not answer; pip takes torch from its own sources" \
      "(on a plain PyPI set-up that is the CUDA build, several GB; set TORCH_CPU_INDEX" \
      "to a mirror to avoid it)" >&2; \
  fi; \
fi; \
args="$(if $(CONSTRAINTS),-c $(CONSTRAINTS)) $$index -e .[$(EXTRAS)]"
endef

.PHONY: setup train test lint postgres pip-args docs
setup: $(STAMP)

pip-args:
	@$(pip_args); echo $$args

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(pip_args); echo "pip install $$args"; $(BIN)/python -m pip install -q $$args
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

# The documentation site (MkDocs + Material; the configuration reference and the API pages are
# generated from the code). --strict: a broken link or a missing page fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "docs built: $(CURDIR)/site/index.html"
