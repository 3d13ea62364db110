# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test test-fast bench scale-out install migrate check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

TEST_STAMP := $(VENV)/.installed-test-plugins

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

# The tests install two sample adapter packages (one broken on purpose) to prove entry-point loading,
# and the extras of the amqp and sftp adapters (tested against a real RabbitMQ and sshd).
$(TEST_STAMP): $(STAMP) tests/plugin_packages/hub-sample-adapter/pyproject.toml tests/plugin_packages/hub-broken-adapter/pyproject.toml
	$(PIP) install --quiet ./tests/plugin_packages/hub-sample-adapter ./tests/plugin_packages/hub-broken-adapter -e '.[amqp,sftp]'
	touch $(TEST_STAMP)

install: $(STAMP)

migrate: install
	mkdir -p var
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --no-input

## Run the hub: web admin on $(PORT), the task cluster and (demo) the VTEX sandbox. Ctrl-C stops all.
run: migrate
	DEBUG=$${DEBUG:-1} $(PY) manage.py runhub --port $(PORT)

## Run the whole test suite (SQLite unless DATABASE_URL is set; Redis broker when REDIS_URL is set).
test: $(TEST_STAMP)
	mkdir -p var
	$(PY) -m pytest $(PYTEST_ARGS)

## Scale-out check (README, "Deployment"): two qclusters (Redis broker, 3 workers each) on a fresh PostgreSQL
## database deliver 1,000 sandbox orders exactly once. Needs PostgreSQL at HUB_FAULTS_PG_URL
## (default postgres://postgres@127.0.0.1:5432/postgres) and redis-server on PATH.
scale-out: $(STAMP)
	$(PY) scripts/scale_out.py $(SCALE_OUT_ARGS)

## Benchmark the real pipeline against the VTEX sandbox (README, "Performance"; about 5 minutes).
## A smoke run: make bench BENCH_ARGS="--quick --orders 20 --naive-orders 5"
bench: $(STAMP)
	$(PY) -m hub_bench $(BENCH_ARGS)

check: install
	$(VENV)/bin/lint-imports  # the import contracts of pyproject.toml ([tool.importlinter]); docs/architecture.md
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	env -i PATH="$$PATH" DEBUG=false SECRET_KEY="check-deploy-$$(date +%s)-a-long-random-enough-secret-key-value" ALLOWED_HOSTS=hub.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var
