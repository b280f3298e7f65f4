# Baeum: `make run` serves the API with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
APPLICANTS ?= 200
# Where the embedded demo keeps its SQLite database, keys and files (as config/settings.py).
DATA_DIR := $(or $(BAEUM_DATA_DIR),var)
SQLITE := $(or $(SQLITE_PATH),$(DATA_DIR)/baeum.sqlite3)

.PHONY: run reset test install messages migrate seed serve lint format check bench-intake clean lock wheel

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Resolve pyproject.toml's dependencies afresh and record the versions in constraints.txt.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

# A wheel of Baeum with its compiled catalogue, in dist/.
wheel: $(MO)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	rm -rf build

# The staff pages' Korean catalogue, compiled from the committed .po (the .mo is not kept).
MO := config/locale/ko/LC_MESSAGES/django.mo
$(MO): config/locale/ko/LC_MESSAGES/django.po $(STAMP)
	$(BIN)/python manage.py compilemessages --locale ko --ignore '.venv' --ignore 'var' --ignore build --ignore dist

messages: $(MO)

install: $(STAMP) $(MO)

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo --applicants $(APPLICANTS)

run: seed
	@echo "Staff workbench: http://$(HOST):$(PORT)/staff/  (caseworker, manager, finance1, finance2, auditor)"
	@echo "API: http://$(HOST):$(PORT)/api/v1/  (Swagger UI at /api/v1/docs/, ReDoc at /api/v1/redoc/)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Start the demo over: a new database and no stored files; the virtualenv and the
# development keys (var/dev-keys.json) stay. Embedded SQLite only.
reset: install
	@if [ -n "$$DATABASE_URL" ]; then echo "make reset starts over the embedded SQLite demo; DATABASE_URL is set" >&2; exit 1; fi
	rm -f $(SQLITE) $(SQLITE)-wal $(SQLITE)-shm
	rm -rf $(DATA_DIR)/documents
	$(MAKE) --no-print-directory seed
	@echo "A fresh demo is loaded: make run serves it."

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: lint
	$(BIN)/python manage.py makemigrations --check --dry-run

bench-intake: $(STAMP)
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) var
