# The two commands of Floe's README. Both install what they need and are safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.floe-installed

.PHONY: install demo test lint screenshots stack-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: start the local stack, seed PostgreSQL, replicate it into Iceberg, reconcile, summarise
demo: install
	$(BIN)/floe demo

## test: lint and the whole test suite (unit and real-stack tests)
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

## screenshots: the README's pictures of the Prefect UI (runs the demo first; needs chromium)
screenshots: demo
	command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
	$(BIN)/python docs/screenshots.py

lint: install
	$(BIN)/ruff check .

stack-down: install
	$(BIN)/floe stack down

clean: stack-down
	if [ -L .floe/stack/pg ]; then rm -rf "$$(readlink -f .floe/stack/pg)"; fi
	rm -rf .floe
