# The two quick-start commands: `make demo` and `make test`.
# Both install what they need first (tools/install.py; idempotent).
# The environment is the active virtualenv, else .venv in this folder.

SYSTEM_PYTHON ?= python3
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(CURDIR)/.venv/bin/python)

.PHONY: install test lint pytest demo clean

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

clean:
	rm -rf work_dirs data/toy .pytest_cache .ruff_cache
