"""`python -m vtex_sandbox` and `python -m vtex_sandbox.erp`: real processes, driven over HTTP."""
import signal
import subprocess
import sys

import pytest

from .processes import ROOT, Served

pytestmark = pytest.mark.slow  # the sandbox as a process

DEMO_HEADERS = {"X-VTEX-API-AppKey": "vtexappkey-demostore-SANDBOX", "X-VTEX-API-AppToken": "sandbox-token-not-secret"}


@pytest.fixture
def served():
    started = []

    def start(module, *args):
        started.append(Served(module, *args))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def test_sandbox_command_serves_orders_and_stops_on_sigterm(served, http):
    sandbox = served("vtex_sandbox", "--initial-orders", "2", "--orders-per-minute", "0", "--seed", "5")
    items = http.get(sandbox.url + "/api/orders/feed", params={"maxlot": 10}, headers=DEMO_HEADERS, timeout=5).json()
    assert len(items) == 2
    assert http.get(sandbox.url + "/api/orders/feed", params={"maxlot": 10}, timeout=5).status_code == 401
    code, output = sandbox.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Stopping the sandbox." in output


def test_sandbox_command_makes_the_kinds_asked_for_in_turn(served, http):
    sandbox = served("vtex_sandbox", "--initial-orders", "4", "--orders-per-minute", "0", "--seed", "5",
                     "--kinds", "seller,split")
    orders = http.get(sandbox.url + "/_sandbox/orders", params={"app_key": DEMO_HEADERS["X-VTEX-API-AppKey"]},
                      timeout=5).json()
    ids = [o["orderId"] for o in orders]
    assert len(ids) == 6 and sum(i.startswith("SLR-") for i in ids) == 2
    assert sum(i.endswith("-02") for i in ids) == 2
    assert sandbox.stop(signal.SIGTERM)[0] == 0
    done = subprocess.run([sys.executable, "-m", "vtex_sandbox", "--kinds", "seller,nonsense"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown order kind nonsense" in done.stderr


def test_sandbox_command_stops_on_ctrl_c(served, http):
    sandbox = served("vtex_sandbox", "--initial-orders", "0", "--orders-per-minute", "0")
    assert http.get(sandbox.url + "/_sandbox/health", timeout=5).json() == {"ok": True}
    code, output = sandbox.stop(signal.SIGINT)
    assert code == 0, output


def test_sandbox_command_reports_a_busy_port(served):
    first = served("vtex_sandbox", "--initial-orders", "0", "--orders-per-minute", "0")
    port = first.url.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "vtex_sandbox", "--port", port, "--initial-orders", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_erp_command_records_posts(served, http):
    erp = served("vtex_sandbox.erp")
    assert http.post(erp.url + "/orders", json={"x": 1}, timeout=5).json() == {"id": "ERP-1"}
    assert [r["body"] for r in http.get(erp.url + "/_erp/received", timeout=5).json()] == [{"x": 1}]
    code, output = erp.stop()
    assert code == 0, output
    assert "Stopping the loopback ERP." in output
