# Two commands a fresh machine needs (see README):
#   make dev    install, then run the whole product on the embedded default
#   make test   install, then run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

# The Cloud Functions source: main.py, the vendored vettra package (with its data files)
# and requirements.txt, as Cloud Build uploads it (terraform/ zips this folder).
BUNDLE ?= build/functions

.PHONY: dev test install bench clean functions-bundle

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/vettra dev --host $(HOST) --port $(PORT)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

bench: install
	$(PY) bench/intercept.py
	$(PY) bench/audit.py
	$(PY) bench/approvals.py
	$(PY) bench/canonical.py
	$(PY) bench/store_size.py

functions-bundle:
	@test -n "$(BUNDLE)" || { echo "BUNDLE is empty" >&2; exit 2; }
	rm -rf "$(BUNDLE)"
	mkdir -p "$(BUNDLE)"
	cp functions/main.py functions/requirements.txt "$(BUNDLE)/"
	cp -R shared/vettra "$(BUNDLE)/vettra"
	find "$(BUNDLE)" -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "functions bundle: $(BUNDLE)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
