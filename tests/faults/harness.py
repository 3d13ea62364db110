"""The hub as real processes, for the scale-out run and the fault scenarios.

Everything here runs as separate processes, the way a deployment does: the VTEX sandbox
(`python -m vtex_sandbox`), a loopback ERP (`python -m vtex_sandbox.erp`), one or more
`manage.py qcluster`, a fresh PostgreSQL database (on a given server, or on a PRIVATE instance
started with initdb/pg_ctl in a temporary folder) and a private `redis-server`. The test process
only drives them over HTTP and reads the database with plain SQL.

Rules kept everywhere: every process is started in its own session (its own process group) and
stopped with `os.killpg` (SIGTERM, then SIGKILL after a grace period, because django-q2 can hang
on shutdown); every wait is bounded; private instances and databases are removed at the end.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")
PYTHON = sys.executable
SHARED_PG_ADMIN_URL = os.environ.get("HUB_FAULTS_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BIN = next((d for d in ("/usr/lib/postgresql/15/bin", "/usr/local/bin") if Path(d, "pg_ctl").exists()), "")

APP_KEY = "vtexappkey-faultstore-HARNESS"
APP_TOKEN = "faultstore-token-not-secret-123"
ACCOUNT = "faultstore"


class HarnessError(AssertionError):
    pass


# --- small helpers ----------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, *, interval=0.5, what="the condition"):
    """Call `predicate` until it returns something truthy; raise HarnessError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a server restarting: keep trying until the deadline
            last_error = exc
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def as_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


# --- processes --------------------------------------------------------------------------------
class Proc:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name, argv, env, logdir):
        self.name, self.argv, self.env = name, list(argv), dict(env)
        self.log_path = Path(logdir) / f"{name}.log"
        self.popen = None
        self.starts = 0

    def start(self):
        self.starts += 1
        logfile = open(self.log_path, "ab")
        logfile.write(f"\n----- start #{self.starts} at {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        logfile.flush()
        try:
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=logfile, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            logfile.close()
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def _signal_group(self, sig):
        try:
            os.killpg(self.popen.pid, sig)  # the group outlives its leader while children remain
            return True
        except ProcessLookupError:
            return False

    def kill(self):
        """SIGKILL the whole process group: a machine losing power, as far as this process knows."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace=10):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:  # django-q2 can hang on shutdown
                pass
        self._signal_group(signal.SIGKILL)  # whatever is left of the group, leader gone or not
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def run(argv, *, env=None, timeout=120, user=None, check=True):
    if user and as_root():
        argv = ["runuser", "-u", user, "--"] + list(argv)
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


# --- PostgreSQL ---------------------------------------------------------------------------------
def _with_db(url, name):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class PostgresServer:
    """A server on which a scenario creates (and afterwards drops) its own fresh database."""

    def __init__(self, admin_url=SHARED_PG_ADMIN_URL):
        self.admin_url = admin_url

    def execute(self, sql):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create_database(self, name):
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.execute(f'CREATE DATABASE "{name}"')
        return _with_db(self.admin_url, name)

    def drop_database(self, name):
        try:
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # cleanup must not hide the real outcome
            log(f"could not drop database {name}: {exc}")

    def close(self):
        pass


class PrivatePostgres(PostgresServer):
    """A throw-away PostgreSQL cluster: initdb + pg_ctl in a temporary folder, on a free port.

    Never the machine's shared server: this one may be restarted and is deleted afterwards. As
    root, initdb/pg_ctl run as the `postgres` OS user in a folder that user owns.
    """

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hub-private-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres" if as_root() else None
        if self.user:
            shutil.chown(self.dir, user="postgres", group="postgres")
        self.options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=150 "
                        f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        run([f"{PG_BIN}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            user=self.user, timeout=120)
        self.start()
        super().__init__(f"postgres://postgres@127.0.0.1:{self.port}/postgres")

    def _pg_ctl(self, *args, timeout=90):
        return run([f"{PG_BIN}/pg_ctl", "-D", str(self.data), *args], user=self.user, timeout=timeout)

    def start(self):
        self._pg_ctl("-l", str(self.dir / "server.log"), "-o", self.options, "-w", "-t", "60", "start")

    def restart(self, mode="fast"):
        """`pg_ctl restart -m fast`: every connection is cut, the server comes back."""
        # -l as at start: without it the server would write to (and hold open) our output pipe.
        self._pg_ctl("-l", str(self.dir / "server.log"), "-m", mode, "-w", "-t", "60", "restart", "-o", self.options)

    def close(self):
        try:
            self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", timeout=60)
        except Exception as exc:
            log(f"private PostgreSQL did not stop cleanly: {exc}")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Redis --------------------------------------------------------------------------------------
class PrivateRedis:
    """A private `redis-server --save ''` on a free port; `restart()` loses everything it held."""

    def __init__(self, logdir):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hub-private-redis-"))
        self.proc = Proc("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(self.dir)], os.environ, logdir)
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1).ping()

    def start(self):
        self.proc.start()
        wait_until(self.ping, 20, interval=0.2, what="the private Redis")

    def kill(self):
        self.proc.kill()

    def restart(self, down_seconds=2.0):
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def close(self):
        self.proc.stop(grace=5)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the sandbox and the ERP ------------------------------------------------------------------------
class Http:
    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False

    def get(self, path, timeout=30):
        response = self.session.get(self.url + path, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def post(self, path, body=None, timeout=60):
        response = self.session.post(self.url + path, json=body or {}, timeout=timeout)
        response.raise_for_status()
        return response.json() if response.content else None


def tool_env(workdir):
    """Environment of the development tools (sandbox, ERP): DEBUG on, nothing shared."""
    return dict(os.environ, DEBUG="1", HUB_VAR_DIR=str(Path(workdir) / "tools-var"), DATABASE_URL="", REDIS_URL="",
                PYTHONUNBUFFERED="1")


class SandboxProcess(Http):
    def __init__(self, workdir, *, visibility_timeout=10, seed=7):
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}")
        self.proc = Proc("sandbox", [PYTHON, "-m", "vtex_sandbox", "--port", str(port), "--orders-per-minute", "0",
                                     "--initial-orders", "0", "--seed", str(seed)], tool_env(workdir), workdir).start()
        wait_until(lambda: self.get("/_sandbox/health", timeout=2)["ok"], 60, interval=0.3, what="the VTEX sandbox")
        # Our own store with a short visibility timeout: an item retrieved by a cycle that died
        # comes back within the scenario instead of after 250 s.
        self.post("/_sandbox/accounts", {"account_name": ACCOUNT, "app_key": APP_KEY, "app_token": APP_TOKEN, "feed_config": {
            "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
            "queue": {"visibilityTimeoutInSeconds": visibility_timeout, "messageRetentionPeriodInSeconds": 345600}}})

    def create_orders(self, count):
        ids = []
        while len(ids) < count:
            ids += self.post("/_sandbox/orders", {"app_key": APP_KEY, "count": min(250, count - len(ids))})["order_ids"]
        return ids

    def faults(self, **switches):
        return self.post("/_sandbox/faults", switches)

    def clear_faults(self):
        response = self.session.delete(self.url + "/_sandbox/faults", timeout=10)
        response.raise_for_status()

    def stats(self):
        return self.get("/_sandbox/stats")

    def close(self):
        self.proc.stop(grace=5)


class ErpProcess(Http):
    def __init__(self, workdir, *, latency_ms=0):
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}")
        self.proc = Proc("erp", [PYTHON, "-m", "vtex_sandbox.erp", "--port", str(port), "--latency-ms", str(latency_ms)],
                         tool_env(workdir), workdir).start()
        wait_until(lambda: self.get("/_erp/received", timeout=2) is not None, 60, interval=0.3, what="the loopback ERP")

    def received(self, everything=False):
        return self.get("/_erp/received" + ("?all=1" if everything else ""), timeout=120)

    def fail(self, status=500):
        self.post("/_erp/fail", {"status": status})

    def recover(self):
        self.post("/_erp/recover")

    def close(self):
        self.proc.stop(grace=5)


# --- the hub ------------------------------------------------------------------------------------------
# The timeout chain (integration/settings.py), shortened so that a scenario runs in a minute or two: HTTP timeouts
# < cycle/dispatch budget < lease and claim TTL < django-q2 timeout < django-q2 retry.
FAST_HUB_ENV = {
    "VTEX_CONNECT_TIMEOUT": "2", "VTEX_READ_TIMEOUT": "5", "VTEX_DEFAULT_RETRY_AFTER": "1",
    "FEED_CYCLE_BUDGET": "12", "DISPATCH_BUDGET": "30",
    "FEED_LEASE_TTL": "15", "SYNC_CLAIM_TTL": "15",
    "Q_TIMEOUT": "45", "Q_RETRY": "60",
    "SYNC_BACKOFF_SECONDS": "1,2,4,8", "SYNC_BACKOFF_JITTER": "0.2",
    "BREAKER_THRESHOLD": "5", "BREAKER_OPEN_SECONDS": "5",
}


class Hub:
    """The hub's processes and database for one run: migrate, configure, run qclusters, inspect."""

    def __init__(self, workdir, *, database_url, redis_url, workers=3, extra_env=None, fast=True):
        from cryptography.fernet import Fernet

        self.workdir = Path(workdir)
        self.database_url = database_url
        self.env = dict(os.environ)
        for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST", "HUB_TESTING", "Q_SYNC"):
            self.env.pop(name, None)
        self.env.update({
            "DEBUG": "0", "SECRET_KEY": "faults-" + uuid.uuid4().hex * 2, "HUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "HUB_VAR_DIR": str(self.workdir / "hub-var"), "HUB_DEMO": "0", "Q_WORKERS": str(workers),
            "Q_CLUSTER_NAME": "vtexhub", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "integration.settings",
        })
        if fast:
            self.env.update(FAST_HUB_ENV)
        self.env.update(extra_env or {})
        self.clusters = []

    # management commands
    def manage(self, *args, timeout=180):
        return run([PYTHON, MANAGE, *args], env=self.env, timeout=timeout).stdout

    def shell(self, code, timeout=120):
        return self.manage("shell", "-c", code, timeout=timeout)

    def migrate(self):
        self.manage("migrate", "--no-input", timeout=300)

    def create_store(self, sandbox_url, erp_url):
        out = self.shell(
            "from integration.models import Account, AdapterBinding\n"
            f"a = Account(name='Fault store', account_name={ACCOUNT!r}, app_key={APP_KEY!r}, api_base_url={sandbox_url!r})\n"
            f"a.app_token = {APP_TOKEN!r}\n"
            "a.save()\n"
            "b = AdapterBinding(account=a, adapter_key='webhook', name='Loopback ERP')\n"
            f"b.apply_settings({{'url': {erp_url + '/orders'!r}, 'signing_secret': 'faults-signing-secret', 'timeout': 5}})\n"
            "b.save()\n"
            "print('STORE', a.pk, b.pk)\n")
        line = next(line for line in out.splitlines() if line.startswith("STORE "))
        _, account_pk, binding_pk = line.split()
        self.account_pk, self.binding_pk = int(account_pk), int(binding_pk)

    def issue_erp_token(self):
        """An ERP API token for the store's binding (the way back), as `manage.py issue_erp_token` makes it."""
        out = self.shell(
            "from integration.models import AdapterBinding, ErpToken\n"
            f"print('TOKEN', ErpToken.issue(AdapterBinding.objects.get(pk={self.binding_pk}), name='faults')[1])\n")
        return next(line for line in out.splitlines() if line.startswith("TOKEN ")).split()[1]

    def web(self, name="web"):
        """The hub's web process, as `runhub` starts it, for the ERP API; returns (Proc, base URL)."""
        port = free_port()
        # Plain HTTP on loopback, as behind a TLS-terminating proxy: no redirect to https.
        env = {**self.env, "SECURE_SSL_REDIRECT": "0"}
        proc = Proc(name, [PYTHON, MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"], env, self.workdir).start()
        web = Http(f"http://127.0.0.1:{port}")
        wait_until(lambda: web.session.get(web.url + "/health/", timeout=2).status_code in (200, 503), 60, interval=0.3,
                   what="the hub's web process")
        return proc, web.url

    def kick_feed_cycle(self):
        """What `runhub` does at start: a first feed cycle now instead of at the next schedule slot."""
        self.shell("from django_q.tasks import async_task; async_task('integration.tasks.run_feed_cycles')")

    def qcluster(self, name="qcluster"):
        proc = Proc(name, [PYTHON, MANAGE, "qcluster"], self.env, self.workdir)
        self.clusters.append(proc)
        return proc.start()

    def stop_clusters(self, grace=10):
        """SIGTERM every cluster at once, then SIGKILL what is left after `grace` seconds."""
        for proc in self.clusters:
            if proc.alive():
                proc._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(proc.alive() for proc in self.clusters):
            time.sleep(0.2)
        for proc in self.clusters:
            proc.stop(grace=0)

    # the database, read with plain SQL (a new connection each time: the server may have restarted)
    def query(self, sql, params=()):
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql, params=()):
        return self.query(sql, params)[0][0]

    def progress(self):
        row = self.query(
            "SELECT (SELECT count(*) FROM integration_feedevent),"
            " (SELECT count(*) FROM integration_ordersync WHERE status = 'succeeded'),"
            " (SELECT count(*) FROM integration_order WHERE start_handling_state IN ('done', 'conflict')),"
            " (SELECT count(*) FROM integration_order WHERE claimed_by <> ''),"
            " (SELECT count(*) FROM integration_ordersync WHERE status = 'pending')")[0]
        return dict(zip(("events", "delivered", "start_handled", "claimed", "pending"), row))


# --- outcome ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    orders: int
    faults: str = ""
    duration_s: float = 0.0
    time_to_recover_s: float | None = None
    deliveries: int = 0
    unique_keys: int = 0
    repeats_covered_by_key: int = 0
    orders_with_two_keys: int = 0
    erp_rejected: int = 0
    start_handling_calls: int = 0
    start_handling_ok: int = 0
    orders_lost: int = 0
    start_handled_twice: int = 0
    pending_syncs: int = 0
    failed_syncs: int = 0
    claimed_orders: int = 0
    feed_depth: int = 0
    notes: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)

    def line(self):
        ttr = f", time to recover {self.time_to_recover_s:.0f}s" if self.time_to_recover_s is not None else ""
        return (f"{self.scenario}: {self.orders} orders in {self.duration_s:.0f}s{ttr}; faults: {self.faults or 'none'}; "
                f"deliveries {self.deliveries} ({self.unique_keys} keys, {self.repeats_covered_by_key} repeats covered by the "
                f"idempotency key, {self.erp_rejected} rejected by the ERP); start-handling calls {self.start_handling_calls} "
                f"({self.start_handling_ok} ok); lost {self.orders_lost}; violations {len(self.violations)}")

    def save(self, directory=None):
        directory = Path(directory or os.environ.get("HUB_FAULTS_REPORT_DIR", ROOT / "var" / "faults"))
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{self.scenario}.json").write_text(json.dumps(asdict(self), indent=2, default=str))


def all_done(hub, sandbox, order_ids):
    """True when every order was delivered and start-handled, nothing is pending or claimed and
    the feed holds nothing (cheap checks on the database first, the sandbox last)."""
    p = hub.progress()
    if p["start_handled"] < len(order_ids) or p["pending"] or p["claimed"]:
        return False
    return sandbox.stats()["feed_depth"] == 0


def wait_for_all(hub, sandbox, order_ids, timeout, what="every order delivered and start-handled"):
    last = {}

    def check():
        if any(not c.alive() for c in hub.clusters):
            dead = [c.name for c in hub.clusters if not c.alive()]
            raise HarnessError(f"qcluster {dead} exited:\n" + "\n".join(c.tail() for c in hub.clusters if not c.alive()))
        p = hub.progress()
        if p != last:
            log(f"progress {p}")
            last.clear()
            last.update(p)
        return all_done(hub, sandbox, order_ids)

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except HarnessError:
            raise
        except Exception as exc:  # the database or the sandbox restarting
            log(f"(waiting: {type(exc).__name__}: {exc})")
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}; last progress {last}\n{diagnose(hub)}")
        time.sleep(1.0)


def diagnose(hub, limit=10):
    """The orders that are not finished, with their syncs and last attempts (for a failure message)."""
    try:
        rows = hub.query(
            "SELECT o.order_id, o.start_handling_state, o.start_handling_due_at, o.start_handling_record, o.claimed_by,"
            " o.claimed_until, s.status, s.attempts, s.next_attempt_at, left(s.last_error, 200), now()"
            " FROM integration_order o LEFT JOIN integration_ordersync s ON s.order_id = o.id"
            " WHERE o.start_handling_state NOT IN ('done', 'conflict') OR o.claimed_by <> '' OR s.status <> 'succeeded'"
            " ORDER BY o.id LIMIT %s", (limit,))
        attempts = hub.query(
            "SELECT o.order_id, a.number, a.outcome, a.started_at, left(a.error, 200) FROM integration_syncattempt a"
            " JOIN integration_ordersync s ON s.id = a.sync_id JOIN integration_order o ON o.id = s.order_id"
            " WHERE o.start_handling_state NOT IN ('done', 'conflict') OR s.status <> 'succeeded' ORDER BY a.id LIMIT %s", (limit * 3,))
    except Exception as exc:
        return f"(no diagnosis: {exc})"
    return "unfinished orders:\n" + "\n".join(map(str, rows)) + "\ntheir attempts:\n" + "\n".join(map(str, attempts))


def verify(hub, sandbox, erp, order_ids, outcome):
    """Fill `outcome` with the figures and list every broken promise in `outcome.violations`."""
    expected = set(order_ids)
    records = erp.received()
    everything = erp.received(everything=True)
    keys_of = defaultdict(set)
    deliveries = Counter()
    for record in records:
        key = record.get("idempotency_key") or ""
        parts = key.split(":")
        if len(parts) < 4 or parts[3] != "send":
            outcome.violations.append(f"a delivery without a send idempotency key: {key!r}")
            continue
        keys_of[parts[2]].add(key)
        deliveries[key] += 1
    outcome.deliveries = sum(deliveries.values())
    outcome.unique_keys = len(deliveries)
    outcome.repeats_covered_by_key = outcome.deliveries - outcome.unique_keys
    outcome.erp_rejected = len(everything) - len(records)
    two_keys = [oid for oid, keys in keys_of.items() if len(keys) > 1]
    outcome.orders_with_two_keys = len(two_keys)
    if two_keys:
        outcome.violations.append(f"{len(two_keys)} orders sent under two idempotency keys (a real duplicate), e.g. {two_keys[:3]}")
    strangers = set(keys_of) - expected
    if strangers:
        outcome.violations.append(f"{len(strangers)} deliveries for orders never created, e.g. {sorted(strangers)[:3]}")
    undelivered = expected - set(keys_of)

    stats = sandbox.stats()
    ok = stats["start_handling_ok"]
    outcome.start_handling_calls = sum(stats["start_handling_calls"].values())
    outcome.start_handling_ok = sum(ok.get(oid, 0) for oid in expected)
    not_started = {oid for oid in expected if ok.get(oid, 0) == 0}
    twice = [oid for oid in expected if ok.get(oid, 0) > 1]
    outcome.start_handled_twice = len(twice)
    if twice:
        outcome.violations.append(f"{len(twice)} orders moved to start-handling more than once, e.g. {twice[:3]}")
    lost = undelivered | not_started
    outcome.orders_lost = len(lost)
    if undelivered:
        outcome.violations.append(f"{len(undelivered)} orders never reached the ERP, e.g. {sorted(undelivered)[:3]}")
    if not_started:
        outcome.violations.append(f"{len(not_started)} orders never start-handled, e.g. {sorted(not_started)[:3]}")
    wrong_status = [oid for oid in expected if stats["statuses"].get(oid) not in ("start-handling", "handling")]
    if wrong_status:
        outcome.violations.append(f"{len(wrong_status)} orders not in handling at VTEX, e.g. {wrong_status[:3]}")
    outcome.feed_depth = stats["feed_depth"]
    if outcome.feed_depth:
        outcome.violations.append(f"{outcome.feed_depth} feed events never committed")

    outcome.pending_syncs = hub.scalar("SELECT count(*) FROM integration_ordersync WHERE status = 'pending'")
    outcome.failed_syncs = hub.scalar("SELECT count(*) FROM integration_ordersync WHERE status NOT IN ('pending', 'succeeded')")
    outcome.claimed_orders = hub.scalar("SELECT count(*) FROM integration_order WHERE claimed_by <> '' OR start_handling_state = 'claimed'")
    if outcome.pending_syncs:
        outcome.violations.append(f"{outcome.pending_syncs} syncs still pending")
    if outcome.failed_syncs:
        rows = hub.query("SELECT status, left(last_error, 200) FROM integration_ordersync WHERE status NOT IN ('pending', 'succeeded') LIMIT 3")
        outcome.violations.append(f"{outcome.failed_syncs} syncs ended not succeeded, e.g. {rows}")
    if outcome.claimed_orders:
        outcome.violations.append(f"{outcome.claimed_orders} orders still claimed")
    # A start-handling whose worker died before recording the answer is called again; VTEX answers
    # 409 when the first call had taken effect, recorded as a conflict. The sandbox's count of
    # successful calls above is what proves "once".
    outcome.notes["start_handling_states"] = dict(hub.query(
        "SELECT start_handling_state, count(*) FROM integration_order GROUP BY start_handling_state"))
    syncs = hub.scalar("SELECT count(*) FROM integration_ordersync WHERE status = 'succeeded' AND action = 'send'")
    if syncs != len(expected):
        outcome.violations.append(f"{syncs} succeeded send syncs for {len(expected)} orders")
    return outcome


class Scenario(ExitStack):
    """One run: sandbox + ERP + fresh database + private Redis + the hub, all torn down on exit.

    `private_pg=True` starts a private PostgreSQL instance (for scenarios that restart it);
    otherwise a fresh database is created on HUB_FAULTS_PG_URL's server (the shared one) and dropped.
    """

    def __init__(self, name, *, orders, workdir=None, private_pg=False, erp_latency_ms=0, workers=3,
                 visibility_timeout=10, hub_env=None, keep_workdir=False, fast=True):
        super().__init__()
        self.name, self.order_count = name, orders
        self.private_pg, self.erp_latency_ms, self.workers = private_pg, erp_latency_ms, workers
        self.visibility_timeout, self.hub_env, self.fast = visibility_timeout, hub_env or {}, fast
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"hub-{name}-"))
        self.keep_workdir = keep_workdir
        self.outcome = Outcome(scenario=name, orders=orders)
        self.started = None

    def __enter__(self):
        super().__enter__()
        try:
            self._setup()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _setup(self):
        log(f"[{self.name}] workdir {self.workdir}")
        self.callback(self._cleanup_workdir)
        self.redis = PrivateRedis(self.workdir)
        self.callback(self.redis.close)
        if self.private_pg:
            self.pg = PrivatePostgres()
        else:
            self.pg = PostgresServer()
        self.callback(self.pg.close)
        self.db_name = f"hub_{self.name.replace('-', '_')}_{os.getpid()}"
        database_url = self.pg.create_database(self.db_name)
        if not self.private_pg:
            if self.keep_workdir or os.environ.get("HUB_FAULTS_KEEP"):
                log(f"[{self.name}] database kept: {database_url}")
            else:
                self.callback(self.pg.drop_database, self.db_name)
        self.sandbox = SandboxProcess(self.workdir, visibility_timeout=self.visibility_timeout)
        self.callback(self.sandbox.close)
        self.erp = ErpProcess(self.workdir, latency_ms=self.erp_latency_ms)
        self.callback(self.erp.close)
        self.hub = Hub(self.workdir, database_url=database_url, redis_url=self.redis.url, workers=self.workers,
                       extra_env=self.hub_env, fast=self.fast)
        self.callback(self.hub.stop_clusters)  # runs first on exit: the hub stops before its services
        t = time.monotonic()
        self.hub.migrate()
        self.hub.create_store(self.sandbox.url, self.erp.url)
        log(f"[{self.name}] database migrated and store created in {time.monotonic() - t:.1f}s")

    def _cleanup_workdir(self):
        if self.keep_workdir or os.environ.get("HUB_FAULTS_KEEP"):
            log(f"[{self.name}] logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def seed(self):
        t = time.monotonic()
        self.order_ids = self.sandbox.create_orders(self.order_count)
        log(f"[{self.name}] {len(self.order_ids)} ready-for-handling orders seeded in {time.monotonic() - t:.1f}s")
        return self.order_ids

    def start_clusters(self, count=1):
        self.started = self.started or time.monotonic()
        return [self.hub.qcluster(f"qcluster-{n + 1}") for n in range(count)]

    def wait_for_all(self, timeout):
        wait_for_all(self.hub, self.sandbox, self.order_ids, timeout)

    def finish(self, *, recovered_from=None):
        """Verify, record and return the outcome (the caller asserts on `violations`)."""
        now = time.monotonic()
        self.outcome.duration_s = round(now - self.started, 1)
        if recovered_from is not None:
            self.outcome.time_to_recover_s = round(now - recovered_from, 1)
        verify(self.hub, self.sandbox, self.erp, self.order_ids, self.outcome)
        self.outcome.save()
        log(self.outcome.line())
        for violation in self.outcome.violations:
            log(f"  VIOLATION: {violation}")
        return self.outcome

    def cluster_logs(self):
        return "\n".join(c.log_text() for c in self.hub.clusters)
