# Everything a fresh machine with Python 3.11+ needs: `make run` and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run check test lint typecheck unit bench bench-smoke clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "creditbot needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The bot; with nothing configured it runs a clearly labelled demo on the console.
run: $(STAMP)
	$(BIN)/creditbot run

lint: $(STAMP)
	$(BIN)/ruff check bot adapters tests bench
	$(BIN)/ruff format --check bot adapters tests bench

typecheck: $(STAMP)
	$(BIN)/mypy bot adapters

unit: $(STAMP)
	$(BIN)/pytest

# A seconds-long run of the benchmark runner, so that it keeps working (before pytest, whose summary
# closes the output); `make bench` for the real figures.
bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

bench: $(STAMP)
	$(BIN)/python -m bench.run

test: lint typecheck bench-smoke unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
