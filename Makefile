# The two commands of the README: `make demo` and `make test`. Both set up
# everything they need on a fresh machine (a virtualenv in .venv; for tests,
# Debian's chromium for the browser tests, Debian's Java 17 for the Spark tests).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz field spark java chromium lint typecheck unit browser bench sample clean

demo: $(STAMP)
	$(BIN)/forensics demo

test: $(STAMP) chromium java lint typecheck unit browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "forensics needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# PySpark's local mode (the spark-marked tests) starts a JVM: Debian's Java 17 runtime.
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Debian's openjdk-17-jre-headless for the Spark tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && { \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null 2>&1 || \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; }; }

lint: $(STAMP)
	$(BIN)/ruff check forensics tests bench
	$(BIN)/ruff format --check forensics tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not browser and not field and not spark"

# The Spark engine's tests (PySpark local[2], a JVM; 3 minutes in a fresh clone): CI runs them after
# `make test`, which installs the Java runtime they need.
spark: $(STAMP) java
	$(BIN)/pytest -m spark

# The long tier CI runs after `make test`: the separation on the field family (logs
# written apart from the tuning library), 6 minutes on 2 cores at low load, 48 at load 10-20.
field: $(STAMP)
	$(BIN)/pytest -m field

# More and new random cases for the property tests (CI draws a fixed sequence; see tests/conftest.py).
fuzz: $(STAMP)
	CI= FUZZ_SCALE=$${FUZZ_SCALE:-5} $(BIN)/pytest -m "not browser and not field and not spark" \
		tests/test_fuzz.py tests/test_expression.py tests/test_readers.py tests/test_queries.py \
		tests/test_stats.py tests/test_contrast.py tests/test_ingest.py

browser: $(STAMP) chromium
	$(BIN)/pytest -m browser

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/signals.py

# Rebuild the shipped samples (the exact commands are in data_samples/README.md).
sample: $(STAMP)
	$(BIN)/forensics simulate --scenario postmortem-2025 --seed 7 --out data_samples/postmortem-2025
	$(BIN)/forensics simulate --counted --seed 7 --out data_samples/counted-minutes
	$(BIN)/python data_samples/otel-genai/make.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
