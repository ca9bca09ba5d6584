# ExpertBook: `make run` serves the app, `make test` runs the tests. Needs Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps
	$(BIN)/flask --app wsgi db upgrade
	@# The demo's password is in the README: never seed it in production.
	@if [ "$$EXPERTBOOK_ENV" = production ]; then echo "production: demo seed skipped"; \
	else $(BIN)/flask --app wsgi demo seed --if-empty; fi
	$(BIN)/python wsgi.py

test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev-deps
	$(BIN)/python bench/slots.py
	$(BIN)/python bench/booking.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
