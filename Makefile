# Proactive Tutor: `make demo` runs the console locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PLATFORM_PORT ?= 8765

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: export PLATFORM_BASE_URL = http://127.0.0.1:$(PLATFORM_PORT)
demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py install_schedules
	@echo ""
	@echo "Proactive Tutor is running at http://127.0.0.1:$(PORT)/ (Ctrl-C stops web, worker, dispatcher, conductor and platform)"
	@echo "Platform simulator: $(PLATFORM_BASE_URL) (what it received: $(PLATFORM_BASE_URL)/_sim/report)"
	@echo "Logins: ms.rivera / demo-teacher, mr.okafor / demo-teacher, compliance / demo-compliance, admin / demo-admin"
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py platform_sim --port $(PLATFORM_PORT) --latency-ms 40 & \
	$(PY) manage.py qcluster & \
	$(PY) manage.py run_due_tasks & \
	$(PY) manage.py run_conductor & \
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/dashboard.py
	$(PY) bench/sync.py

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
