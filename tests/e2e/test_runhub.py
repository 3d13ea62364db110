"""`make run`'s supervisor: demo orders flow, and Ctrl-C stops every child."""
import json
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
SANDBOX_HEADERS = {"X-VTEX-API-AppKey": "vtexappkey-demostore-SANDBOX", "X-VTEX-API-AppToken": "sandbox-token-not-secret"}


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


def invoiced_with_tracking(sandbox_url):
    """One order the sandbox has invoiced with a tracking number (GET as VTEX's API), or None."""
    with urllib.request.urlopen(f"{sandbox_url}/_sandbox/stats", timeout=5) as response:
        statuses = json.load(response)["statuses"]
    for order_id in sorted(oid for oid, status in statuses.items() if status == "invoiced"):
        request = urllib.request.Request(f"{sandbox_url}/api/oms/pvt/orders/{order_id}", headers=SANDBOX_HEADERS)
        with urllib.request.urlopen(request, timeout=5) as response:
            order = json.load(response)
        if any(p.get("trackingNumber") for p in order.get("packageAttachment", {}).get("packages", [])):
            return order
    return None


@pytest.mark.slow
def test_runhub_shows_demo_orders_invoiced_and_stops_everything_on_ctrl_c(tmp_path):
    web, sandbox = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(HUB_VAR_DIR=str(tmp_path), DEBUG="1", HUB_ADMIN_PASSWORD="runhub-test-password", Q_WORKERS="2")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v0"], env=env, check=True, cwd=ROOT)
    hub = subprocess.Popen(manage + ["runhub", "--port", str(web), "--sandbox-port", str(sandbox)], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Orders go out to the demo file drop; the demo ERP invoices each a few seconds later, with a
        # tracking number, through the hub's ERP API; the hub sends both to the sandbox.
        deadline = time.monotonic() + 150
        delivered, invoiced = 0, None
        while time.monotonic() < deadline and invoiced is None:
            assert hub.poll() is None, hub.stdout.read()
            if answers(f"http://127.0.0.1:{web}/admin/login/") == 200:
                with sqlite3.connect(tmp_path / "hub.sqlite3") as db:
                    delivered = db.execute("select count(*) from integration_ordersync where status='succeeded'").fetchone()[0]
                invoiced = invoiced_with_tracking(f"http://127.0.0.1:{sandbox}")
            if invoiced is None:
                time.sleep(1)
        assert delivered > 0, "no demo order was delivered within 150 s"
        assert list((tmp_path / "drop").glob("demostore-*-send.json"))
        assert invoiced is not None, "no demo order reached invoiced (with its tracking number) in the sandbox within 150 s"
        [package] = invoiced["packageAttachment"]["packages"]
        assert package["invoiceNumber"] == f"NF-{invoiced['orderId']}" and package["invoiceValue"] == invoiced["value"]
        # The admin shows it invoiced too.
        with sqlite3.connect(tmp_path / "hub.sqlite3") as db:
            assert db.execute("select vtex_status from integration_order where order_id=?",
                              (invoiced["orderId"],)).fetchone() == ("invoiced",)
    finally:
        hub.send_signal(signal.SIGINT)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
            pytest.fail("runhub did not stop within 30 s of Ctrl-C")
    output = hub.stdout.read()
    assert "Log in as 'admin' with the password from HUB_ADMIN_PASSWORD" in output
    assert "A demo ERP invoices each order" in output and f"demo ERP: invoiced order {invoiced['orderId']}" in output
    assert "vhub_" not in output  # the demo ERP's token is never printed
    assert "runhub-test-password" not in output
    assert "Stopped." in output
    assert answers(f"http://127.0.0.1:{web}/admin/login/") is None
    assert answers(f"http://127.0.0.1:{sandbox}/_sandbox/health") is None
    # The sandbox kept its demo store and orders in var/: the next `make run` finds the same ones.
    state = json.loads((tmp_path / "sandbox-state.json").read_text())
    assert [a["account_name"] for a in state["accounts"]] == ["demostore"]
    assert state["orders"]


def test_runhub_demo_without_the_sandbox_package_stops_with_a_clear_message(tmp_path):
    """Installed from the wheel (no vtex_sandbox): demo mode says why it cannot start, and starts nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(HUB_VAR_DIR=str(tmp_path), DEBUG="1", HUB_DEMO="true")
    hide_the_sandbox = ("import runpy, sys\n"
                        "sys.modules['vtex_sandbox'] = None  # as if installed from the wheel: import fails\n"
                        f"sys.argv = ['manage.py', 'runhub', '--port', '{free_port()}']\n"
                        f"runpy.run_path({str(ROOT / 'manage.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", hide_the_sandbox], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "vtex_sandbox" in done.stderr and "HUB_DEMO=false" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sandbox-state.json").exists()


def descendants(pid):
    """Every live process below `pid` (children in sessions of their own included), from /proc."""
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    frontier.append(kid)
    return found


def alive(pid):
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie has exited; only its parent's wait is missing


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc (Linux)")
def test_sigterm_to_the_leader_stops_every_child_as_ctrl_c_does(tmp_path):
    """A supervisor (systemd, supervisord, docker stop) sends SIGTERM to the leader alone."""
    web, sandbox = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(HUB_VAR_DIR=str(tmp_path), DEBUG="1", HUB_ADMIN_PASSWORD="runhub-test-password", Q_WORKERS="2")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v0"], env=env, check=True, cwd=ROOT)
    hub = subprocess.Popen(manage + ["runhub", "--port", str(web), "--sandbox-port", str(sandbox)], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children = set()
    try:
        banner = ""
        for line in hub.stdout:  # the banner comes once the admin answers
            banner += line
            if "Log in as 'admin'" in line:
                break
        assert answers(f"http://127.0.0.1:{web}/admin/login/") == 200, banner
        # The banner is the last thing printed at start-up: after the children's own start-up lines.
        assert "VTEX order hub running: admin at" in banner
        children = descendants(hub.pid)
        assert len(children) >= 3, children  # sandbox, web, qcluster (and qcluster's workers)
        started = time.monotonic()
        hub.send_signal(signal.SIGTERM)
        hub.wait(15)
        took = time.monotonic() - started
    finally:
        children |= descendants(hub.pid)
        if hub.poll() is None:
            hub.kill()
        for pid in children:  # never leave a failed run's servers behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    output = hub.stdout.read()
    assert "Stopped." in output and "killing it" not in output, output
    assert took < 8, f"runhub took {took:.1f}s to stop on SIGTERM"
    assert not [pid for pid in children if alive(pid)], "children left running after SIGTERM"


@pytest.mark.parametrize("after", [0.4, 1.5])
def test_ctrl_c_while_a_command_starts_or_runs_stops_it_without_a_traceback(after, tmp_path):
    """`make run` stops its children with SIGINT; one still importing Django (the cluster loads the
    most) printed a KeyboardInterrupt traceback after the banner. Interrupted while importing or
    setting up Django, or while the command runs: the same quiet exit, code 130 as a shell gives.
    (Not earlier: before Python has its own SIGINT handler, the signal ends it as it would any program.)"""
    env = dict(os.environ, HUB_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "shell", "-c", "import time; time.sleep(30)"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert "Traceback" not in output, output
    assert proc.returncode == 130, (proc.returncode, output)
