# `make test` and `make demo` work on a fresh machine: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cnn3d-installed
# e.g. TORCH_PIP_ARGS="--index-url URL" for a CPU-only PyTorch build where an index has one
TORCH_PIP_ARGS ?=

.PHONY: test demo lint install clean mutate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# whole test files spread over 3 processes, the longest first (tests/conftest.py): many tests
# wait on subprocesses and streams, so 3 keep 2 cores busy (BENCHMARKS.md, "The test suite")
test: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder

demo: $(STAMP)
	$(BIN)/cnn3d demo --output demo_output

# mutation testing of the critical modules, each against its own tests (not part of `make test`)
mutate: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check 'mutmut>=3.3'
	$(BIN)/python tests/mutate.py $(MODULES)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mutate
