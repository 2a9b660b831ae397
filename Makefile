# The two quick-start commands: `make demo` and `make test`.
# Both install what they need first (tools/install.py; idempotent).
# The environment is the active virtualenv, else .venv in this folder.

SYSTEM_PYTHON ?= python3
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(CURDIR)/.venv/bin/python)

# `make wheelhouse` collects the wheels for an air-gapped machine
# (docs/get_started.md); e.g. for a Python 3.12 GPU node:
#   make wheelhouse WHEELHOUSE=/data/wheelhouse \
#       WHEELHOUSE_ARGS="--python-version 3.12 --platform manylinux_2_28_x86_64"
# and there: MMPADING_WHEELHOUSE=/data/wheelhouse make install
WHEELHOUSE ?= wheelhouse
WHEELHOUSE_ARGS ?=

.PHONY: install test lint pytest demo wheelhouse clean

install:
	$(SYSTEM_PYTHON) tools/install.py

lint: install
	$(PY) -m ruff check .

pytest: install
	$(PY) -m pytest tests/

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest tests/

demo: install
	$(PY) tools/demo.py

wheelhouse: install
	$(PY) tools/install.py --download $(WHEELHOUSE) $(WHEELHOUSE_ARGS)

clean:
	rm -rf work_dirs data/toy .pytest_cache .ruff_cache
