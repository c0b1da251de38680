# Two commands: `make demo` (the main job) and `make test` (the test suite). Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two OpenMP threads that sleep instead of spinning: on a shared 2-core box spinning threads made
# PyTorch steps 5-10x slower (../shared/benchmarks/PROTOCOLS.md).
export OMP_NUM_THREADS ?= 2
export OMP_WAIT_POLICY ?= PASSIVE
# make test: pytest-xdist workers, one thread each, a whole test file at a time, the slowest files first
# (tests/conftest.py); TEST_WORKERS=0 runs the tests in one process.
TEST_WORKERS ?= 2

.PHONY: install demo test lint clean

$(BIN)/realnvp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev,vision]"
	touch $@

install: $(BIN)/realnvp

demo: install  ## train the moons preset; pictures, animation and metrics land in runs/moons
	rm -rf runs/moons
	$(BIN)/realnvp train moons --out runs/moons

test: install  ## lint, then every test (CLI end to end, bijector battery, doctests, TensorBoard logs)
	@if [ -x .ci/install-browser.sh ]; then .ci/install-browser.sh; fi
	$(BIN)/ruff check src tests benchmarks
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=20  # the slowest tests listed, so a slow new one shows

clean:
	rm -rf runs $(VENV) build src/*.egg-info
