# The two commands a fresh machine needs: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH ?=

.PHONY: setup system-deps run test bench lint migrate tools

setup: system-deps vendor/node_modules/.installed tools

system-deps:
	@scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# OpenCode, its plugin package and the bridge's Python packages for sandboxes (idempotent, ~2 s when done).
tools: $(VENV)/.installed
	$(PY) manage.py install_sandbox_tools

# Browser libraries served as static files (noVNC).
vendor/node_modules/.installed: vendor/package.json vendor/package-lock.json
	npm ci --prefix vendor --no-audit --no-fund --loglevel=error
	touch $@

migrate: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable

# The front proxy (nginx), the web processes (Daphne), Celery worker and beat, and the embedded Redis unless
# REDIS_URL is set.
run: migrate
	$(VENV)/bin/honcho start -f Procfile

test: setup
	@scripts/install-system-deps.sh test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench $(BENCH)

# ruff, the dependency rules (import-linter's contracts in pyproject.toml) and mypy on the pure modules and cores.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
