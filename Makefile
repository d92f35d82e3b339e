# The two commands in the README: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench install clean

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
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
