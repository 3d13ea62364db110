"""`make run`'s supervisor: demo orders flow, and Ctrl-C stops every child."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except Exception:
        return None


@pytest.mark.slow
def test_runhub_shows_demo_orders_and_stops_everything_on_ctrl_c(tmp_path):
    web, sandbox = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(HUB_VAR_DIR=str(tmp_path), DEBUG="1", HUB_ADMIN_PASSWORD="runhub-test-password", Q_WORKERS="2")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v0"], env=env, check=True, cwd=ROOT)
    hub = subprocess.Popen(manage + ["runhub", "--port", str(web), "--sandbox-port", str(sandbox)], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        delivered = 0
        while time.monotonic() < deadline:
            assert hub.poll() is None, hub.stdout.read()
            if answers(f"http://127.0.0.1:{web}/admin/login/") == 200:
                with sqlite3.connect(tmp_path / "hub.sqlite3") as db:
                    delivered = db.execute("select count(*) from integration_ordersync where status='succeeded'").fetchone()[0]
                if delivered:
                    break
            time.sleep(1)
        assert delivered > 0, "no demo order was delivered within 90 s"
        assert list((tmp_path / "drop").glob("demostore-*-send.json"))
    finally:
        hub.send_signal(signal.SIGINT)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
            pytest.fail("runhub did not stop within 30 s of Ctrl-C")
    output = hub.stdout.read()
    assert "Log in as 'admin' with the password from HUB_ADMIN_PASSWORD" in output
    assert "runhub-test-password" not in output
    assert "Stopped." in output
    assert answers(f"http://127.0.0.1:{web}/admin/login/") is None
    assert answers(f"http://127.0.0.1:{sandbox}/_sandbox/health") is None
