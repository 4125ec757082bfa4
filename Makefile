# paw: `make demo` and `make test` do all set-up on a fresh machine (a .venv in the repo root).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.paw-setup-done
TORCH  := torch==2.13.0

.PHONY: setup tokenizers test test-llama-cpp demo zoo lint clean gpu-wheels gpu-check-dry-run gpu-check

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

# one worker per core (at most 4), tests of one module together (they share module fixtures)
test: setup tokenizers
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadscope

# Greedy generation through llama.cpp itself equals paw's (tests marked llama_cpp, outside `make test`: building
# llama-cpp-python from the pinned source archive `make tokenizers` fetched takes ~4 minutes on 2 cores).
test-llama-cpp: setup tokenizers
	$(PY) -c "import llama_cpp" 2>/dev/null || $(PY) -m pip install --quiet -c requirements/constraints.txt \
		$$($(PY) -c "from paw.models.real_tokenizers import checked_sdist; print(checked_sdist(None, None))")
	$(PY) -m pytest -q -m llama_cpp tests/export

demo: setup
	$(VENV)/bin/paw demo

# The zoo of small models pretrained here for the cross-family transfer study (paw/models/zoo.py; ~45 min on 2 cores)
zoo: setup
	$(VENV)/bin/paw zoo build

# The GPU check (benchmarks/gpu_check.py): fill the carried, git-ignored .gpu/ here (wheels the GPU machine's image
# lacks, the Qwen2 tokenizer, benchmark data), check it without a GPU, then run the check there (offline, <= 8 min).
gpu-wheels: setup tokenizers
	$(PY) benchmarks/gpu_env.py download

gpu-check-dry-run: gpu-wheels
	$(PY) benchmarks/gpu_check.py --dry-run

gpu-check:
	$(PYTHON) benchmarks/gpu_check.py --out $(or $(OUT),gpu_check_results)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples && $(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_layers.py   # the layers contract

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
