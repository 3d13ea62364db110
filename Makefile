# The two commands of the README: `make run` and `make test` (docs/contributors/tests.md lists the others).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
PORT ?= 8000

.DEFAULT_GOAL := run
.PHONY: run test docs bench scale-out install migrate check clean

# pip's own output goes to var/install.log and is shown only when it fails: `make run` prints a
# progress line, then the hub's banner, not a hundred lines of install output.
# $(call) splits its arguments at commas: write the extras' commas as $(comma).
comma := ,
QUIET_PIP = mkdir -p var; $(PIP) install --quiet $(1) >var/install.log 2>&1 || { cat var/install.log; exit 1; }

$(PY):
	@echo "Creating the virtualenv $(VENV)..."
	@$(PYTHON) -m venv $(VENV)
	@$(call QUIET_PIP,--upgrade pip)

$(STAMP): $(PY) pyproject.toml
	@echo "Installing the hub and its dependencies into $(VENV) (about a minute the first time)..."
	@$(call QUIET_PIP,-e '.[test$(comma)amqp$(comma)sftp$(comma)bench]')
	@# Older checkouts installed the tests' sample plugins (one broken on purpose) into .venv: take them out.
	@if [ -e $(VENV)/.installed-test-plugins ]; then \
	  $(PIP) uninstall --yes --quiet hub-sample-adapter hub-broken-adapter >/dev/null 2>&1; rm -f $(VENV)/.installed-test-plugins; fi
	@touch $(STAMP)

# The development env file: DEBUG=true and a secret key of its own, git-ignored, read by the
# settings (integration/settings.py). Written once; a server has no such file and sets its environment.
.env:
	@umask 077; printf '# Development settings for this checkout, written by make (git-ignored).\n# A server sets its own environment instead: see docs/reference/settings.md.\nDEBUG=true\nSECRET_KEY=%s\n' \
	  "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "Wrote $@ (DEBUG=true and a generated SECRET_KEY) for this development checkout."

install: $(STAMP) .env

migrate: install
	@mkdir -p var
	@$(PY) manage.py migrate --no-input -v0

## Run the hub: web admin on $(PORT), the task cluster and (demo) the VTEX sandbox. Ctrl-C stops all.
run: migrate
	@$(PY) manage.py runhub --port $(PORT)

## Run the whole test suite (SQLite unless DATABASE_URL is set; Redis broker when REDIS_URL is set).
## The sample plugin packages the tests need are installed into a temporary directory, not $(VENV).
test: install
	@mkdir -p var
	$(PY) -m pytest $(PYTEST_ARGS)

## Build the documentation (MkDocs, strict: a dead link or a page missing from the nav fails) into site/.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

$(DOCS_STAMP): $(STAMP)
	@echo "Installing the documentation tools (MkDocs, Material)..."
	@$(call QUIET_PIP,-e '.[docs]')
	@touch $(DOCS_STAMP)

## Scale-out check (docs/contributors/reliability.md): two qclusters (Redis broker, 3 workers each) on a fresh
## PostgreSQL database deliver 1,000 sandbox orders exactly once. Needs PostgreSQL at HUB_FAULTS_PG_URL
## (default postgres://postgres@127.0.0.1:5432/postgres) and redis-server on PATH.
scale-out: $(STAMP)
	$(PY) scripts/scale_out.py $(SCALE_OUT_ARGS)

## Benchmark the real pipeline against the VTEX sandbox (docs/contributors/performance.md; about 9 minutes).
## A smoke run: make bench BENCH_ARGS="--quick --orders 20 --naive-orders 5"; --full for every run (PostgreSQL, 16 stores, hook, round trip, amqp, sftp)
bench: $(STAMP)
	$(PY) -m hub_bench $(BENCH_ARGS)

check: install
	$(VENV)/bin/lint-imports  # the import contracts of pyproject.toml ([tool.importlinter]); docs/architecture.md
	$(PY) manage.py makemigrations --check --dry-run
	env -i PATH="$$PATH" HUB_ENV_FILE= DEBUG=false SECRET_KEY="check-deploy-$$(date +%s)-a-long-random-enough-secret-key-value" ALLOWED_HOSTS=hub.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var site
