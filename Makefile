# Two commands for a fresh clone: `make run` (the web chat) and `make test` (the suite).
# Everything installs into .venv from the pinned requirement files; nothing by hand.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev index lint bench clean

run: install index
	$(BIN)/python app.py

test: install-dev
	$(BIN)/python -m pytest

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python requirements.txt requirements-models.txt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Incremental: a no-op (a few seconds) when corpus/ has not changed since the last run.
index: install
	$(BIN)/python -m rag index

lint: install-dev
	$(BIN)/ruff check rag tests app.py benchmarks

bench: install
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) data
