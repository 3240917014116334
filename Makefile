# Two commands a fresh machine needs (see README):
#   make dev    install, then run the whole product on the embedded default
#   make test   install, then run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
RULES_NPM := tests/rules/node_modules

# The Cloud Functions source: main.py, the vendored vettra package (with its data files)
# and requirements.txt, as Cloud Build uploads it (terraform/ zips this folder).
BUNDLE ?= build/functions

.PHONY: dev test install bench clean functions-bundle

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The Firestore rules tests' npm packages (tests/contract/test_firestore_rules.py skips
# loudly without them); from the npm registry, exactly as package-lock.json pins them.
$(RULES_NPM): tests/rules/package.json tests/rules/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/rules && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules; \
	else \
		echo "npm not found: the Firestore rules tests (tests/rules) will be skipped"; \
	fi

install: $(VENV)/.installed $(RULES_NPM)

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
	$(PY) bench/verifier.py

functions-bundle:
	@test -n "$(BUNDLE)" || { echo "BUNDLE is empty" >&2; exit 2; }
	rm -rf "$(BUNDLE)"
	mkdir -p "$(BUNDLE)"
	cp functions/main.py functions/requirements.txt "$(BUNDLE)/"
	cp -R shared/vettra "$(BUNDLE)/vettra"
	find "$(BUNDLE)" -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "functions bundle: $(BUNDLE)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis $(RULES_NPM)
