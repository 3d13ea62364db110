"""One benchmark run: a fresh database, the sandbox and the ERP as processes, the hub as a qcluster.

The hub is measured exactly as it runs in production: ``manage.py qcluster`` with Q_WORKERS worker
processes, the schedules ``migrate`` creates and nothing queued beforehand, intake enqueuing
dispatch, DEBUG off. The clock of the burst starts when the cluster is launched (the hub starting
against a backlog, like a restart after an outage): its start-up and its wait for the first
scheduled feed cycle are included in the rate from launch; the drain rate runs from the first
delivery to the last order delivered and start-handled.
"""
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from hub_bench.procs import TreeSampler, machine_cpu_seconds, server_roots, wait_for

ROOT = Path(__file__).resolve().parents[1]
MANAGE = ROOT / "manage.py"
APP_KEY = "vtexappkey-benchstore-BENCH"
APP_TOKEN = "bench-token-not-secret-0123456789"
ACCOUNT = "benchstore"
# The hub's own settings come from the environment; these would leak from the caller's shell or test run.
_STRIP_ENV = ("DATABASE_URL", "REDIS_URL", "HUB_VAR_DIR", "Q_WORKERS", "Q_CLUSTER_NAME", "Q_SYNC", "HUB_TESTING",
              "DEBUG", "SECRET_KEY", "HUB_ENCRYPTION_KEYS", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER")
_run_counter = 0


@dataclass
class RunConfig:
    label: str
    orders: int
    workers: int = 4
    database_url: str = ""          # "" = SQLite in the run's temporary HUB_VAR_DIR
    redis_url: str = ""             # "" = the ORM broker
    sandbox_latency_ms: int = 50
    erp_latency_ms: int = 100
    steady_rate: float = 0.0        # orders per second of the steady phase (0: no steady phase)
    steady_seconds: float = 0.0
    extra_env: dict = field(default_factory=dict)
    timeout: float = 0.0            # of the burst; 0 = from the number of orders
    profile_dir: str = ""           # py-spy the hub's processes during the burst, into this directory
    stores: int = 1                 # orders spread over this many stores (one binding each)
    adapter: str = "webhook"        # webhook (loopback ERP), amqp (RabbitMQ) or sftp (a throw-away sshd)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    round_trip: bool = False        # the ERP invoices every order back through the hub's ERP API
    intake_mode: str = "feed"       # feed, or hook: the sandbox pushes every change to the hub's web server
    keep: bool = False
    log: object = None              # callable(str) for progress lines


def _progress(cfg, text):
    if cfg.log:
        cfg.log(text)


# --- processes ------------------------------------------------------------------------------------
def spawn(cmd, env, log_path):
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def stop_process(proc, grace=15.0):
    """SIGINT the process group, as Ctrl-C does, then SIGKILL what is still up (django-q2 can hang
    on shutdown). SIGINT, not SIGTERM: django-q2's workers ignore SIGINT and finish their task (the
    feed poller commits the handles it holds), but die at once on SIGTERM."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # the leader may be gone while its children are not
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def start_server(kind, latency_ms, env, log_path, *extra):
    cmd = [sys.executable, "-m", "hub_bench.servers", kind, "--latency-ms", str(latency_ms), *extra]
    proc = spawn(cmd, env, log_path)

    def listening():
        if proc.poll() is not None:
            raise RuntimeError(f"the {kind} exited: {Path(log_path).read_text(errors='replace')[-2000:]}")
        for line in Path(log_path).read_text(errors="replace").splitlines():
            if line.startswith("LISTENING "):
                return line.split(" ", 1)[1].strip()
        return None

    url = wait_for(listening, timeout=30, interval=0.05)
    if not url:
        stop_process(proc)
        raise RuntimeError(f"the {kind} did not start within 30 s")
    return proc, url


class Http:
    def __init__(self):
        self.session = requests.Session()

    def get(self, url):
        response = self.session.get(url, timeout=120)
        response.raise_for_status()
        return response.json()

    def post(self, url, body=None):
        response = self.session.post(url, json=body or {}, timeout=300)
        response.raise_for_status()
        return response.json() if response.content else None


def pyspy_executable():
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if os.path.exists(found) else None


def start_profiler(pid, cfg, tmp):
    """py-spy (pip install py-spy; needs ptrace rights) on the qcluster and every child, raw stacks."""
    out = Path(cfg.profile_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"py-spy-{''.join(c if c.isalnum() else '_' for c in cfg.label)}.txt"
    exe = pyspy_executable()
    if exe is None:
        raise RuntimeError("--profile needs py-spy: pip install -e '.[bench]' (or pip install py-spy)")
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--rate", os.environ.get("BENCH_PYSPY_RATE", "50"), "--nonblocking", *(["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else []), *(["--idle"] if os.environ.get("BENCH_PYSPY_IDLE") else []),
                             "--format", "raw", "--output", str(path)], stdout=open(tmp / "py-spy.log", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    proc.output_path = path
    return proc


def finish_profiler(proc, cfg, result):
    from hub_bench.profile import summarize_raw

    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        stop_process(proc)
    summary_path = proc.output_path.with_name(proc.output_path.name.replace("py-spy-", "summary-"))
    try:
        text, top = summarize_raw(proc.output_path)
    except OSError as exc:
        result["notes"].append(f"py-spy wrote no profile ({exc}); see its log in the run's folder (--keep)")
        return
    summary_path.write_text(text)
    result["profile"] = {"raw": str(proc.output_path), "summary": str(summary_path), "top": top}


# --- databases ------------------------------------------------------------------------------------
def _is_postgres(url):
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql")


def create_postgres_database(server_url):
    import psycopg

    global _run_counter
    _run_counter += 1
    name = f"bench_{os.getpid()}_{_run_counter}"
    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def drop_postgres_database(server_url, name):
    import psycopg

    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class HubDatabase:
    """Read-only queries on the hub's database from this process (no Django connection of ours)."""

    def __init__(self, url):
        self.url = url
        self.postgres = _is_postgres(url)

    def rows(self, sql):
        if self.postgres:
            import psycopg

            parts = urlsplit(self.url)
            with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql"))) as conn:
                return list(conn.execute(sql).fetchall())
        import sqlite3

        conn = sqlite3.connect(self.url[len("sqlite:///"):], timeout=30)
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()

    def counts(self, sql):
        return {str(k): int(v) for k, v in self.rows(sql)}


def _epoch(value):
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _redis_cleanup(redis_url, cluster_name):
    try:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        # Only this run's queue and statistics (its own cluster name); the hub's other keys expire.
        for pattern in (f"django_q:{cluster_name}*",):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    except Exception:  # cleaning up is best effort
        pass


# --- figures --------------------------------------------------------------------------------------
def percentile(values, pct):
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(round(pct / 100.0 * len(ordered) + 0.4999)))
    return ordered[min(rank, len(ordered)) - 1]


def _calls_delta(after, before):
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) - before.get(k, 0)}


# --- the run --------------------------------------------------------------------------------------
def hub_environment(cfg, var_dir, database_url, cluster_name):
    env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
    env.update({
        "DATABASE_URL": database_url,
        "HUB_VAR_DIR": str(var_dir),
        "DEBUG": "0",  # production mode: DEBUG keeps every SQL query in memory
        "SECRET_KEY": "benchmark-" + secrets.token_urlsafe(32),
        "Q_WORKERS": str(cfg.workers),
        "Q_CLUSTER_NAME": cluster_name,
        "HUB_DEMO": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",  # DEBUG is off: the web server (ERP API, hook) answers on loopback
        "SECURE_SSL_REDIRECT": "false",  # plain http on loopback, where production has a TLS proxy in front
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "DJANGO_SETTINGS_MODULE": "integration.settings",
    })
    if cfg.redis_url:
        env["REDIS_URL"] = cfg.redis_url
    # The test suite's fixture plugins (installed in the development venv) are not the product: one
    # fails on import on purpose, the other keeps every delivered sync in a list.
    fixtures = test_fixture_plugins()
    if fixtures:
        disabled = [p for p in env.get("HUB_DISABLE_PLUGINS", "").split(",") if p.strip()]
        env["HUB_DISABLE_PLUGINS"] = ",".join(dict.fromkeys(disabled + fixtures))
    env.update({k: str(v) for k, v in cfg.extra_env.items()})
    return env


TEST_FIXTURE_DISTRIBUTIONS = {"hub-sample-adapter", "hub-broken-adapter"}


def test_fixture_plugins():
    import importlib.metadata

    names = []
    for ep in importlib.metadata.entry_points(group="erp_plugins"):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        if dist in TEST_FIXTURE_DISTRIBUTIONS:
            names.append(ep.name)
    return names


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(env, tmp, port):
    """The hub's web server (the ERP API, the hook): gunicorn as in production, else runserver."""
    if importlib.util.find_spec("gunicorn"):
        cmd = [sys.executable, "-m", "gunicorn", "integration.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--threads", "8"]  # no access log: it would be measured as the hub's CPU
    else:
        cmd = [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"]
    proc = spawn(cmd, env, tmp / "web.log")
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"the web server exited: {(tmp / 'web.log').read_text(errors='replace')[-2000:]}")
        try:
            answer = requests.get(url + "/erp-api/openapi.json", timeout=2, allow_redirects=False)
        except requests.RequestException:
            return False
        if answer.status_code != 200:
            raise RuntimeError(f"the web server answered {answer.status_code} for /erp-api/openapi.json")
        return True

    if not wait_for(up, timeout=60, interval=0.2):
        stop_process(proc)
        raise RuntimeError("the hub's web server did not answer within 60 s")
    return proc, url


def adapter_sink(cfg, tmp, servers_env, stack):
    """Start what receives the hub's deliveries for cfg.adapter; return (process, control URL, binding settings)."""
    if cfg.adapter == "webhook":
        proc, url = start_server("erp", cfg.erp_latency_ms, servers_env, tmp / "erp.log")
        return proc, url, {"url": url + "/orders", "signing_secret": "benchmark-signing-secret-0123456789"}
    if cfg.adapter == "amqp":
        queue = f"hub-bench-{os.getpid()}-{int(time.time())}"
        proc, url = start_server("amqp-sink", 0, servers_env, tmp / "erp.log", "--amqp-url", cfg.amqp_url, "--queue", queue)
        parts = urlsplit(cfg.amqp_url)
        plain = urlunsplit(parts._replace(netloc=f"{parts.username or 'guest'}@{parts.hostname}:{parts.port or 5672}"))
        return proc, url, {"url": plain, "password": parts.password or "", "routing_key": queue}
    if cfg.adapter == "sftp":
        from hub_bench.sshd import throwaway_sshd

        sshd = stack.enter_context(throwaway_sshd())
        proc, url = start_server("dir-sink", 0, servers_env, tmp / "erp.log", "--folder", str(sshd.folder))
        return proc, url, {"host": "127.0.0.1", "port": sshd.port, "username": sshd.user, "password": sshd.password,
                           "host_key_fingerprint": sshd.fingerprint, "remote_directory": "orders"}
    raise ValueError(f"unknown adapter {cfg.adapter!r}")


def run_hub(cfg):
    """Run the burst (and the steady phase if asked); return a dict of figures."""
    from hub_bench.servers import store_credentials

    result = {"label": cfg.label, "orders": cfg.orders, "workers": cfg.workers, "stores": cfg.stores,
              "adapter": cfg.adapter, "round_trip": cfg.round_trip, "intake_mode": cfg.intake_mode, "ok": False, "notes": []}
    tmp = Path(tempfile.mkdtemp(prefix="vtexhub-bench-"))
    servers_env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
    servers_env["DEBUG"] = "1"
    pg_name = None
    procs = {}
    sampler = None
    http = Http()
    stack = contextlib.ExitStack()
    try:
        if cfg.database_url and _is_postgres(cfg.database_url):
            database_url, pg_name = create_postgres_database(cfg.database_url)
        else:
            database_url = f"sqlite:///{tmp / 'hub.sqlite3'}"
        result["database"] = "PostgreSQL" if pg_name else "SQLite"
        result["broker"] = "Redis" if cfg.redis_url else "ORM"
        cluster_name = f"vtexhub-bench-{os.getpid()}-{int(time.time())}"
        env = hub_environment(cfg, tmp, database_url, cluster_name)
        web_port = free_port() if (cfg.round_trip or cfg.intake_mode == "hook") else None
        if web_port:
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{web_port}"  # the hook's address (loopback: the sandbox only)

        procs["sandbox"], sandbox_url = start_server("sandbox", cfg.sandbox_latency_ms, servers_env, tmp / "sandbox.log",
                                                     "--app-key", APP_KEY, "--app-token", APP_TOKEN, "--account", ACCOUNT,
                                                     "--stores", str(cfg.stores))
        procs["erp"], erp_url, adapter_settings = adapter_sink(cfg, tmp, servers_env, stack)
        _progress(cfg, f"[{cfg.label}] sandbox {sandbox_url}, ERP ({cfg.adapter}) {erp_url}; migrating a fresh "
                       f"{result['database']} database")

        setup = subprocess.run(
            [sys.executable, "-m", "hub_bench.hub_setup", json.dumps({
                "sandbox_url": sandbox_url, "app_token": APP_TOKEN, "stores": store_credentials(ACCOUNT, APP_KEY, cfg.stores),
                "adapter": cfg.adapter, "adapter_settings": adapter_settings, "tokens": cfg.round_trip,
                "intake_mode": cfg.intake_mode})],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if setup.returncode != 0:
            raise RuntimeError(f"setting up the hub failed:\n{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}")
        hub = json.loads(setup.stdout.strip().splitlines()[-1])
        result["caps"] = hub["rate_limits"]
        empty_bytes = database_bytes(HubDatabase(database_url), database_url)
        if web_port:
            procs["web"], web_url = start_web(env, tmp, web_port)
        if cfg.round_trip:
            http.post(f"{erp_url}/_erp/invoice-to", {"hub": web_url + "/erp-api", "tokens": hub["tokens"]})
        if cfg.intake_mode == "hook":
            # Registered before the orders exist, so the sandbox pushes each one to the web server.
            hooks = subprocess.run([sys.executable, "-m", "hub_bench.hub_setup", json.dumps({"register_hooks": True})],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            registered = json.loads(hooks.stdout.strip().splitlines()[-1]) if hooks.returncode == 0 else None
            if not registered or not all(r["ok"] for r in registered["hooks"]):
                raise RuntimeError(f"registering the hooks failed:\n{hooks.stdout[-2000:]}\n{hooks.stderr[-2000:]}")

        _progress(cfg, f"[{cfg.label}] seeding {cfg.orders} ready-for-handling orders over {cfg.stores} store(s) in the sandbox")
        http.post(f"{sandbox_url}/_bench/seed", {"count": cfg.orders})
        http.post(f"{sandbox_url}/_sandbox/reset-stats")
        n = cfg.orders

        at_first = {}

        def delivered():
            s, e = http.get(f"{sandbox_url}/_bench/summary"), http.get(f"{erp_url}/_erp/summary")
            if not at_first and e["orders_sent"] > 0 and sampler is not None:
                # The CPU spent so far is start-up and the first cycle; the drain's CPU is the rest.
                at_first.update(cpu=sampler.cpu_seconds(), orders=e["orders_sent"])
            if procs["hub"].poll() is not None:
                raise RuntimeError(f"the qcluster exited with code {procs['hub'].returncode}")
            if cfg.round_trip and s["tracked"] < want:
                return None
            return (s, e) if e["orders_sent"] >= want and s["start_handling_ok"] >= want else None

        # --- burst: the clock starts as the cluster is launched --------------------------------------
        _progress(cfg, f"[{cfg.label}] starting the hub: qcluster with {cfg.workers} workers")
        want = n
        others = TreeSampler([procs["sandbox"].pid, procs["erp"].pid], interval=5.0)
        databases = TreeSampler(server_roots(), interval=5.0)
        others_cpu0, databases_cpu0, machine0 = others.cpu_seconds(), databases.cpu_seconds(), machine_cpu_seconds()
        web_cpu0 = 0.0
        if "web" in procs:
            web_sampler = TreeSampler([procs["web"].pid], interval=1.0)
            web_cpu0 = web_sampler.cpu_seconds()
        t0_wall, t0 = time.time(), time.monotonic()
        procs["hub"] = spawn([sys.executable, str(MANAGE), "qcluster"], env, tmp / "hub.log")
        roots = [procs["hub"].pid] + ([procs["web"].pid] if "web" in procs else [])
        sampler = TreeSampler(roots, interval=0.5).start()
        if cfg.profile_dir:
            procs["profiler"] = start_profiler(procs["hub"].pid, cfg, tmp)
        timeout = cfg.timeout or max(180.0, n / 8.0) + (120.0 if cfg.round_trip else 0.0)
        done = wait_for(delivered, timeout=timeout, interval=0.2)
        burst_seconds = time.monotonic() - t0
        done_wall = time.time()
        burst_cpu = sampler.cpu_seconds() - web_cpu0
        others_cpu = others.cpu_seconds() - others_cpu0
        databases_cpu = databases.cpu_seconds() - databases_cpu0
        machine1 = machine_cpu_seconds()
        sandbox_after, erp_after = http.get(f"{sandbox_url}/_bench/summary"), http.get(f"{erp_url}/_erp/summary")
        first = http.get(f"{erp_url}/_erp/first-receipts")
        first_at = min(first.values()) if first else None
        got = min(erp_after["orders_sent"], sandbox_after["start_handling_ok"])
        drain_span = (done_wall - first_at) if (done and first_at) else None
        result["burst"] = {
            "complete": bool(done),
            "seconds": burst_seconds,
            "delivered": erp_after["orders_sent"],
            "start_handled": sandbox_after["start_handling_ok"],
            # From launch: start-up and the wait for the first scheduled feed cycle included.
            "per_second": got / burst_seconds,
            # Drain: from the first delivery to the last order delivered and start-handled.
            "drain_seconds": drain_span,
            "drain_per_second": (got / drain_span) if drain_span else None,
            "first_delivery_s": (first_at - t0_wall) if first_at else None,
            "calls": sandbox_after["calls"],
            "vtex_calls": sum(sandbox_after["calls"].values()),
            "cpu_seconds": burst_cpu,
            # CPU per order of the drain alone (from the first delivery seen): start-up left out.
            "drain_cpu_ms": ((burst_cpu + web_cpu0 - at_first["cpu"]) * 1000 / max(got - at_first["orders"], 1)
                             if at_first and got > at_first["orders"] else None),
            "servers_cpu_seconds": others_cpu,
            "database_servers_cpu_seconds": databases_cpu,
            "machine_busy": (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1e-9),
            "machine_busy_cpu_seconds": machine1[0] - machine0[0],
            "max_per_minute": sandbox_after["max_per_minute"],
            "max_per_second": sandbox_after["max_per_second"],
        }
        if cfg.round_trip:
            result["burst"].update({"invoiced": sandbox_after["invoiced"], "tracked": sandbox_after["tracked"],
                                    "invoice_problems": erp_after.get("invoice_problems", {})})
        if not done:
            result["notes"].append(f"burst timed out after {timeout:.0f} s")
        _progress(cfg, f"[{cfg.label}] burst: {erp_after['orders_sent']}/{n} delivered in {burst_seconds:.1f} s")
        if "profiler" in procs:
            finish_profiler(procs.pop("profiler"), cfg, result)

        # --- steady arrivals ---------------------------------------------------------------------
        if done and cfg.steady_rate > 0 and cfg.steady_seconds > 0:
            before_ids = set(http.get(f"{sandbox_url}/_bench/ready-at"))
            calls_before = sandbox_after["calls"]
            cpu_before = sampler.cpu_seconds()
            count = http.post(f"{sandbox_url}/_bench/steady", {"rate": cfg.steady_rate, "seconds": cfg.steady_seconds})["count"]
            _progress(cfg, f"[{cfg.label}] steady phase: {count} orders at {cfg.steady_rate:g}/s over {cfg.steady_seconds:.0f} s")
            want = n + count
            t1 = time.monotonic()
            steady_done = wait_for(delivered, timeout=cfg.steady_seconds + 180, interval=0.5)
            steady_cpu = sampler.cpu_seconds() - cpu_before
            s_after = http.get(f"{sandbox_url}/_bench/summary")
            ready = http.get(f"{sandbox_url}/_bench/ready-at")
            first = http.get(f"{erp_url}/_erp/first-receipts")
            ids = [oid for oid in ready if oid not in before_ids]
            latencies = [first[oid] - ready[oid] for oid in ids if oid in first]
            stored = {}
            try:
                db = HubDatabase(database_url)
                quoted = ",".join("'" + oid.replace("'", "") + "'" for oid in ids)
                if quoted:
                    for oid, received in db.rows(
                            f"SELECT order_id, MIN(received_at) FROM integration_feedevent WHERE state = 'ready-for-handling' "
                            f"AND order_id IN ({quoted}) GROUP BY order_id"):
                        stored[oid] = _epoch(received)
            except Exception as exc:  # the pipeline split is a bonus figure
                result["notes"].append(f"could not read inbox times: {exc}")
            intake_waits = [stored[oid] - ready[oid] for oid in ids if oid in stored]
            pipeline = [first[oid] - stored[oid] for oid in ids if oid in first and oid in stored]
            calls = _calls_delta(s_after["calls"], calls_before)
            result["steady"] = {
                "complete": bool(steady_done), "orders": count, "rate": cfg.steady_rate,
                "seconds": time.monotonic() - t1, "delivered": len(latencies),
                "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "max": max(latencies) if latencies else None,
                "intake_p50": percentile(intake_waits, 50), "intake_p95": percentile(intake_waits, 95),
                "pipeline_p50": percentile(pipeline, 50), "pipeline_p95": percentile(pipeline, 95),
                "calls": calls, "vtex_calls": sum(calls.values()), "cpu_seconds": steady_cpu,
                "max_per_minute": s_after["max_per_minute"], "max_per_second": s_after["max_per_second"],
            }
            if not steady_done:
                result["notes"].append("the steady phase did not deliver every order in time")

        # --- state of the database -------------------------------------------------------------
        sampler.sample()
        sampler.stop()
        stop_process(procs.pop("hub"))
        db = HubDatabase(database_url)
        result["db"] = {
            "start_handling": db.counts("SELECT start_handling_state, COUNT(*) FROM integration_order GROUP BY start_handling_state"),
            "syncs": db.counts("SELECT status, COUNT(*) FROM integration_ordersync GROUP BY status"),
            "attempts": db.rows("SELECT COUNT(*) FROM integration_syncattempt")[0][0],
            "uncommitted": db.rows("SELECT COUNT(*) FROM integration_feedevent WHERE committed_at IS NULL AND handle <> ''")[0][0],
            "events": db.rows("SELECT COUNT(*) FROM integration_feedevent")[0][0],
            "orders": db.rows("SELECT COUNT(*) FROM integration_order")[0][0],
        }
        try:
            # What the orders added: the size now less the freshly migrated database's.
            result["db"]["bytes"] = database_bytes(db, database_url) - empty_bytes
        except Exception as exc:  # a bonus figure
            result["notes"].append(f"could not measure the database's size: {exc}")
        final_sandbox, final_erp = http.get(f"{sandbox_url}/_bench/summary"), http.get(f"{erp_url}/_erp/summary")
        result["erp"] = final_erp
        result["sandbox"] = {k: final_sandbox[k] for k in ("start_handling_calls", "start_handling_repeated", "feed_depth",
                                                            "max_per_minute", "max_per_second", "max_per_minute_by_store",
                                                            "invoiced", "tracked")}
        result["memory"] = {
            "hwm_sum_mb": sampler.hwm_sum_kb / 1024.0,
            "peak_rss_sum_mb": sampler.peak_rss_sum_kb / 1024.0,
            "peak_pss_sum_mb": sampler.peak_pss_sum_kb / 1024.0,
            "processes": sampler.max_processes,
            "processes_seen": len(sampler.hwm_kb),
        }
        result["ok"] = result["burst"]["complete"] and ("steady" not in result or result["steady"]["complete"])
        return result
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if sampler is not None:
            sampler.stop()
        for proc in procs.values():
            stop_process(proc)
        stack.close()
        if cfg.redis_url:
            _redis_cleanup(cfg.redis_url, locals().get("cluster_name", ""))
        if pg_name:
            try:
                drop_postgres_database(cfg.database_url, pg_name)
            except Exception as exc:
                result["notes"].append(f"could not drop the database {pg_name}: {exc}")
        if cfg.keep:
            result["notes"].append(f"kept the run's files in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def database_bytes(db, database_url):
    """Bytes the hub's database takes on disk now (SQLite: the file, its WAL checkpointed first)."""
    if db.postgres:
        return int(db.rows("SELECT pg_database_size(current_database())")[0][0])
    import sqlite3

    path = Path(database_url[len("sqlite:///"):])
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in (path, Path(str(path) + "-wal")) if p.exists())


def run_naive(cfg, count):
    """The sequential baseline against its own sandbox and ERP processes."""
    from hub_bench.naive import run_naive_consumer

    tmp = Path(tempfile.mkdtemp(prefix="vtexhub-naive-"))
    env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
    env["DEBUG"] = "1"
    procs = []
    try:
        sandbox, sandbox_url = start_server("sandbox", cfg.sandbox_latency_ms, env, tmp / "sandbox.log",
                                            "--app-key", APP_KEY, "--app-token", APP_TOKEN, "--account", ACCOUNT)
        procs.append(sandbox)
        erp, erp_url = start_server("erp", cfg.erp_latency_ms, env, tmp / "erp.log")
        procs.append(erp)
        http = Http()
        http.post(f"{sandbox_url}/_bench/seed", {"count": count})
        http.post(f"{sandbox_url}/_sandbox/reset-stats")
        _progress(cfg, f"[naive] {count} orders, sequentially, 10 per retrieve")
        naive = run_naive_consumer(sandbox_url, erp_url + "/orders", APP_KEY, APP_TOKEN, count)
        summary = http.get(f"{sandbox_url}/_bench/summary")
        return {"orders": naive.orders, "seconds": naive.seconds, "per_second": naive.per_second,
                "cpu_seconds": naive.cpu_seconds, "vtex_calls": sum(summary["calls"].values()),
                "delivered": http.get(f"{erp_url}/_erp/summary")["orders_sent"]}
    finally:
        for proc in procs:
            stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)
