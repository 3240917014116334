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


# Browser tests drive Debian's chromium through the playwright package; it must never
# download a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
NPM ?= npm

.PHONY: dev test test-deps install bench clean functions-bundle browser web-deps web-vendor

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,test]'
	touch $@

# The Firestore rules tests' npm packages (tests/contract/test_firestore_rules.py skips
# loudly without them); from the npm registry, exactly as package-lock.json pins them.
$(RULES_NPM): tests/rules/package.json tests/rules/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/rules && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules; \
	else \
		echo "npm not found: the Firestore rules tests (tests/rules) will be skipped"; \
	fi

install: $(VENV)/.installed

# What only the tests need beyond the venv (make dev does not wait for npm or apt).
test-deps: install $(RULES_NPM) browser web-deps

dev: install
	$(VENV)/bin/vettra dev --host $(HOST) --port $(PORT)

# The dashboard (web/) has no build step: its runtime libraries are vendored in
# web/vendor/ (committed), so `make dev` needs only Python. web-deps installs the locked
# npm packages (axe-core for the accessibility test; the sources of the vendored files).
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
	touch $@

web-deps:
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory web/node_modules/.installed; \
	else echo "make: npm not found: the dashboard's accessibility test (axe-core) will be skipped"; fi

# Refresh web/vendor/ from the locked packages after changing a version in web/package.json.
web-vendor: web/node_modules/.installed
	mkdir -p web/vendor/eventsource-parser
	for f in index parse errors; do cp web/node_modules/eventsource-parser/dist/$$f.js web/vendor/eventsource-parser/; done
	cp web/node_modules/eventsource-parser/LICENSE web/vendor/eventsource-parser/LICENSE
	cp web/node_modules/qrcode-generator/dist/qrcode.mjs web/vendor/qrcode-generator.mjs
	mkdir -p web/vendor/canonicalize
	cp web/node_modules/canonicalize/lib/canonicalize.js web/node_modules/canonicalize/LICENSE web/vendor/canonicalize/

# Debian's chromium for the dashboard's browser tests, installed when it is missing and
# apt can install it (root); otherwise those tests skip, naming what is missing.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	  || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } \
	  || echo "make: could not install chromium with apt: the browser tests will be skipped"; \
	else echo "make: chromium is missing and apt-get is not usable here: the browser tests will be skipped"; fi

test: test-deps
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
	$(PY) bench/credentials.py
	$(PY) bench/verifier.py

functions-bundle:
	@test -n "$(BUNDLE)" || { echo "BUNDLE is empty" >&2; exit 2; }
	rm -rf "$(BUNDLE)"
	mkdir -p "$(BUNDLE)"
	cp functions/main.py functions/requirements.txt "$(BUNDLE)/"
	cp -R shared/vettra "$(BUNDLE)/vettra"
	rm -f "$(BUNDLE)/vettra/web"  # the dashboard's files are Hosting's, not the functions'
	find "$(BUNDLE)" -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "functions bundle: $(BUNDLE)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis $(RULES_NPM)
