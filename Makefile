# The two commands a user needs: `make demo` (everything, end to end) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11

.PHONY: setup demo test lint proto clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[export,triton-cpu,dev]'
	touch $@

demo: setup
	$(PY) -m export --skip-if-current
	$(PY) -m demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

proto: setup
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) model_repository/bert_encoder
