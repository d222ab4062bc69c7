# Everything a fresh machine with Python 3.11+ needs: `make run` and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency (dev tools included) pinned with its hashes: the same versions on every machine, and a
# changed download refused. pyproject.toml keeps the ranges; `make lock` turns them into pins.
LOCK := requirements.lock
LOCK_VENV := $(VENV)-lock
LOCK_FLAGS ?= --upgrade

.PHONY: install lock run check test lint typecheck unit bench bench-smoke clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "creditbot needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve the pins: the newest versions pyproject.toml allows (`make lock LOCK_FLAGS=` keeps the current
# pins and only follows changes to pyproject.toml). pip-tools runs in a virtualenv of its own, thrown away
# afterwards, so it never becomes a dependency of the project.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip-tools
	$(LOCK_VENV)/bin/pip-compile --quiet $(LOCK_FLAGS) --generate-hashes --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml
	rm -rf $(LOCK_VENV)

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
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
