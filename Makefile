# The two commands in the README: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist workers: most tests wait on real servers and processes, so two share two cores
# well (the suite took 17 min this way on a loaded 2-core machine, 20 min alone in one process).
# Each test file stays on one worker, with its module's servers.
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench chaos soak install clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Skyfleet into $(VENV) (torch first, pinned; then the project and its extras)..."
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,triton,coordinator,dev]"
	@# tritonserver ships in nvidia-pytriton, which declares numpy<2: we use only its server
	@# binary and python backend, so it goes in without its dependencies (../shared/design/PLATFORM.md).
	$(BIN)/python -m pip install -q --no-deps nvidia-pytriton==0.7.0
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/skyfleet demo

test: $(STAMP)
	@bash scripts/ensure_chromium.sh >/dev/null
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy --strict protos fleetbus coordinator
	$(BIN)/mypy imaging site_agent training skyfleet
	$(BIN)/hadolint docker/*.Dockerfile
	$(BIN)/python k8s/validate.py
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

# Fault scenarios with real processes, 60-s faults, counted (bench/chaos; README, *Chaos*).
# Needs root (small tmpfs disks), PostgreSQL on 127.0.0.1:5432 and Debian's faketime.
chaos: $(STAMP)
	@command -v faketime >/dev/null || apt-get install -y -q faketime >/dev/null
	SKYFLEET_CHAOS_FAULT_S=60 $(BIN)/python -m bench faults

# A 30-minute fleet run (the demo) with every process's RSS and open descriptors sampled;
# growth per hour reported (bench/soak.py).
soak: $(STAMP)
	$(BIN)/python -m bench.soak 30

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
