PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check clean browser

install: $(STAMP)

# The report tests open pages in a real headless browser: Debian's chromium.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get install -y -q chromium >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	  echo "note: chromium is not installed and could not be (needs root); the browser tests will be skipped"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/workbench demo

# PYTHONDONTWRITEBYTECODE unset: users' Pythons write bytecode caches, so the suite must too.
test: install browser
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q tests

# The edit loop (about 2.5 minutes on 2 cores): lint and import order, then every test that neither builds with
# TVM nor runs for minutes. `make test` is the full suite, and what CI runs.
check: install
	$(BIN)/ruff check workbench tests scripts
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -m "not build and not slow and not gpu" tests

clean:
	rm -rf build reports/run-* .pytest_cache
