# clinscribe developer commands. Needs Python 3.11+, make and git; nothing else.
#   make run    install (once) and start the service on http://$CLINSCRIBE_HOST:$CLINSCRIBE_PORT
#   make test   lint, type-check and run the test suite (SQLite)
#   make test-postgres   run the test suite again with both databases on PostgreSQL
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test test-postgres lint format bench clean help

help:
	@sed -n 's/^#   //p' Makefile

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("clinscribe needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changed since the last install.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[local]"
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/clinscribe db upgrade
	exec $(BIN)/clinscribe serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench eval
	$(BIN)/ruff format --check src tests bench eval
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A private PostgreSQL server on 127.0.0.1 (Debian's postgresql package) for the session;
# tests that never touch a database (marked no_database) are not run again.
test-postgres: $(DEV_STAMP)
	CLINSCRIBE_TEST_DATABASE=postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix src tests bench eval
	$(BIN)/ruff format src tests bench eval

bench: $(DEV_STAMP)
	$(BIN)/python bench/stt_speed.py
	$(BIN)/python bench/pipeline_throughput.py
	$(BIN)/python bench/upload_memory.py
	$(BIN)/python bench/chunked_transcription.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
