"""`python -m hub_bench` (`make bench`) runs end to end on a tiny workload and prints sane figures (never speed)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_command_runs_end_to_end(tmp_path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, "-m", "hub_bench", "--orders", "20", "--naive-orders", "5", "--quick",
           "--json", str(out)]
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        # The same run on the test suite's PostgreSQL server (a fresh bench_<n> database) and Redis.
        server = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
        cmd += ["--database-url", server] + (["--redis-url", redis_url] if redis_url else [])
    env = dict(os.environ, DEBUG="1")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = done.stdout
    for figure in ("Sequential consumer", "throughput (burst)", "drain rate", "first order delivered", "vs naive consumer",
                   "VTEX calls per order", "hub CPU per order", "latency (steady)", "peak memory", "peak rate per route",
                   "database", "correctness", "Targets"):
        assert figure in text, f"{figure!r} missing from:\n{text}"

    figures = json.loads(out.read_text())
    naive = figures["naive"]
    assert naive["orders"] == naive["delivered"] == 5
    assert naive["per_second"] > 0
    (run,) = figures["runs"]
    assert run["ok"] and not run.get("error")
    burst, steady = run["burst"], run["steady"]
    assert burst["complete"] and burst["delivered"] == 20 and burst["start_handled"] == 20
    assert steady["complete"] and steady["delivered"] == steady["orders"] > 0
    total = 20 + steady["orders"]
    # Every order delivered once and start-handled once.
    assert run["erp"]["orders_sent"] == run["erp"]["unique_keys"] == total
    assert run["erp"]["duplicates"] == 0
    assert run["sandbox"]["start_handling_calls"] == total and run["sandbox"]["start_handling_repeated"] == 0
    assert run["sandbox"]["feed_depth"] == 0 and run["db"]["uncommitted"] == 0
    assert run["db"]["syncs"] == {"succeeded": total}
    # Sane figures: calls per order between 2 and 4, some CPU and memory, latencies in order.
    assert 2.0 <= burst["vtex_calls"] / burst["delivered"] <= 4.0
    assert 2.0 <= steady["vtex_calls"] / steady["delivered"] <= 4.0
    assert burst["per_second"] > 0 and burst["cpu_seconds"] > 0
    assert burst["drain_per_second"] > 0 and burst["first_delivery_s"] > 0
    assert run["db"]["bytes"] > 0 and run["db"]["orders"] == total
    assert 0 < steady["p50"] <= steady["p95"] <= steady["max"]
    assert run["memory"]["peak_pss_sum_mb"] > 0 and run["memory"]["processes_seen"] >= 3
    assert run["caps"]["get_order"] > 0 and run["sandbox"]["max_per_minute"]["get_order"] <= run["caps"]["get_order"]
    assert run["sandbox"]["max_per_minute_by_store"]["benchstore"]["get_order"] <= run["caps"]["get_order"]
    # Every target is printed with its mark, never asserted on.
    assert all(mark in ("[PASS]", "[MISS]", "[INFO]") for mark in re.findall(r"\[[A-Z]{4}\]", text))
    assert "first order delivered <= 5 s" in text and ">= 16x the sequential consumer" in text


def test_benchmark_refuses_bad_options_before_starting_anything():
    done = subprocess.run([sys.executable, "-m", "hub_bench", "--orders", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "hub_bench: error: --orders, --naive-orders and --workers must be positive"
    assert done.stdout == ""
