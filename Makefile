# paw: `make demo` and `make test` do all set-up on a fresh machine (a .venv in the repo root).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.paw-setup-done
TORCH  := torch==2.13.0

.PHONY: setup tokenizers test demo lint clean

setup: $(STAMP)

# torch is pinned and installed first: an unpinned torch requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[dev,lm-eval]"
	touch $(STAMP)

# Real tokenizers for the paw-shape/* stand-ins: llama.cpp's vocabulary files from llama-cpp-python's source
# archive on the package index, converted once into ~/.cache/paw/tokenizers (a no-op when already there).
tokenizers: setup
	$(VENV)/bin/paw fetch-tokenizers

test: setup tokenizers
	$(VENV)/bin/python -m pytest -q

demo: setup
	$(VENV)/bin/paw demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples && $(VENV)/bin/ruff format --check src tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
