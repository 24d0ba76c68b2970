# Two set-up commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed before the project so that pip never pulls a CUDA build on a CPU machine.
# Elsewhere: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(BIN)/phewas run-all --config demo.toml

test: install
	$(BIN)/python -m pytest

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) demo .pytest_cache
