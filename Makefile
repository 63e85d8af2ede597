# Two commands set up a fresh machine: `make demo` and `make test`.
# Both create .venv and install trigeo with its dev extras when missing.
# Python 3.11 when the machine has it (CI runs 3.11), else python3 (3.11-3.13 are supported).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.trigeo-installed
DEMO_DIR ?= demo-out

.PHONY: demo demo-quick test bench lint format clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so no other requirement can pull a different build.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/trigeo demo --out $(DEMO_DIR)

# Every stage on 4,000 photos in about two minutes, into its own directory.
demo-quick: $(STAMP)
	$(VENV)/bin/trigeo demo --quick --out $(DEMO_DIR)-quick

test: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(DEMO_DIR)-quick .pytest_cache .ruff_cache
