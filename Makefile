# Two set-up commands: `make demo` and `make test`. Both create .venv and install everything.
# The first Python >= 3.11 on PATH (python3 first); `make demo PYTHON=/path/to/python` to choose.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            2>/dev/null && { echo $$p; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed before the project so that pip never pulls a CUDA build on a CPU machine.
# Elsewhere: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-fast test-study lint docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 found on PATH \
	(tried python3, python3.13, python3.12, python3.11); install one, or pass PYTHON=/path/to/python" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[train,test,baselines]"
	$(BIN)/python -m pip install -q --no-deps "momentfm==0.1.4"  # its pins are too old to resolve
	touch $@

demo: install
	test -f demo/probe-data/manifest.json || $(BIN)/phewas simulate-probe --out demo/probe-data --seed 0 --quiet
	$(BIN)/phewas run-all --config demo.toml

# the suite in TEST_WORKERS processes of one thread each (torch's threads would fight over the cores),
# all but the whole-study test
TEST_WORKERS ?= 2
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not study"

# the whole study on a simulated dataset, simulate to report through run-all (about 4 minutes on
# 2 cores; CI runs it after make test)
test-study: install
	$(BIN)/python -m pytest -m study

# all but the end-to-end tests marked slow or study (under 3 minutes on 2 cores)
test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow and not study"

# ruff, as configured in pyproject.toml (CI runs it before the tests)
lint: install
	$(BIN)/ruff check .

# the documentation site (mkdocs-material; the Python API from its docstrings), built offline,
# warnings as errors, into site/
docs: install
	$(BIN)/python -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) demo .pytest_cache site
