# safecity: `make run` starts the platform with the demo city on the embedded default (SQLite +
# in-process bus); `make test` runs every test against the real services of this machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	SAFECITY_DATA_DIR=$${SAFECITY_DATA_DIR:-data} $(BIN)/safecity serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	mkdir -p bench/results
	set -e; for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script; done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
