"""`make run`: the web admin, the task cluster and (in demo mode) the VTEX sandbox, supervised."""
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integration.demo import (
    DEMO_ACCOUNT, DEMO_APP_KEY, DEMO_APP_TOKEN, DEMO_ERP_TOKEN_NAME, demo_erp_access, ensure_admin_user, ensure_demo_store,
)

NO_SANDBOX = ("Demo mode runs the VTEX sandbox (the vtex_sandbox package), a development tool that ships with "
              "the source checkout, not with the hub's wheel. Run `make run` from a checkout of the repository, "
              "or set HUB_DEMO=false to run the hub without the demo.")
GRACE_SECONDS = 8  # django-q2 can hang on shutdown: kill what is still up after this
DEMO_ERP_DELAY = 5  # seconds between an order landing in the drop folder and the demo ERP's invoice


class Command(BaseCommand):
    help = "Run the hub: web admin, qcluster and, in demo mode, the VTEX sandbox. Ctrl-C stops everything."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8765)))

    def handle(self, *args, port, host, sandbox_port, **options):
        demo = settings.HUB_DEMO
        sandbox_env = sandbox_environment() if demo else None  # before anything starts: a clear refusal
        # Handlers first: a supervisor's SIGTERM during start-up must stop the children started so far
        # (they run in sessions of their own, so nothing else would), exactly as Ctrl-C does.
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = []
        from_env = os.environ.get("HUB_ADMIN_PASSWORD") or None
        password = ensure_admin_user(password=from_env)
        notes = []
        if demo:
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            store = ensure_demo_store(sandbox_url)
            if store:
                notes.append(f"Created the demo store '{store.name}' with a file_drop adapter writing to {settings.VAR_DIR / 'drop'}")
            # The sandbox keeps its stores and orders in var/ so a restart shows the same demo orders.
            children.append(("sandbox", [sys.executable, "-m", "vtex_sandbox", "--port", str(sandbox_port),
                                         "--account", DEMO_ACCOUNT, "--app-key", DEMO_APP_KEY,
                                         "--app-token", DEMO_APP_TOKEN,
                                         "--state-file", str(settings.VAR_DIR / "sandbox-state.json")], sandbox_env))
        children.append(("web", manage + ["runserver", f"{host}:{port}", "--noreload"], None))
        children.append(("qcluster", manage + ["qcluster"], None))
        if demo:
            children.extend(self._demo_erp(host, port, sandbox_env, notes))

        procs = []
        try:
            for name, cmd, env in children:
                if stopping["flag"]:
                    break
                procs.append((name, subprocess.Popen(cmd, env=env, start_new_session=True)))
                if name == "sandbox":
                    time.sleep(1.0)  # let it bind before the first feed cycle
            if not stopping["flag"]:
                # No first feed cycle to enqueue: the cluster starts the feed poller as its workers start.
                # The banner comes last, once the admin answers, so the children's start-up lines do not
                # scroll the URL and the password away.
                self._wait_until_answering(host, port, procs, stopping)
                self._banner(host, port, password, from_env, demo, notes)
            exit_code = 0
            while not stopping["flag"]:
                for name, proc in procs:
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the hub.")
                        stopping["flag"], exit_code = True, 1
                        break
                time.sleep(0.2)
        finally:
            self._stop_all(procs)
        sys.exit(exit_code)

    def _demo_erp(self, host, port, sandbox_env, notes):
        """The way back in the demo: an ERP that invoices each delivered order through the ERP API.

        The API, not file_drop's inbox: the inbox is polled once a minute, the API answers at once,
        so a newcomer sees orders reach `invoiced` seconds after they were delivered."""
        access = demo_erp_access()
        if access is None:
            return []  # no demo file_drop binding (the demo store was changed): nothing to answer
        directory, token = access
        notes.append(f"A demo ERP invoices each order about {DEMO_ERP_DELAY} s after it lands in {directory} and sends "
                     f"a tracking number, through the ERP API (token '{DEMO_ERP_TOKEN_NAME}'): orders reach 'invoiced'.")
        command = [sys.executable, "-m", "vtex_sandbox.erp.invoicer", "--drop", str(directory),
                   "--hub", f"{local_url(host, port)}/erp-api/{DEMO_ACCOUNT}", "--delay", str(DEMO_ERP_DELAY)]
        # The token goes in the environment, not on the command line that `ps` shows.
        return [("demo ERP", command, dict(sandbox_env, HUB_ERP_TOKEN=token))]

    def _wait_until_answering(self, host, port, procs, stopping, timeout=30):
        url = f"{local_url(host, port)}/admin/login/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping["flag"]:
            if any(proc.poll() is not None for _, proc in procs):
                return
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)

    def _banner(self, host, port, password, from_env, demo, notes):
        lines = ["", *notes]
        if demo:
            lines.append("Demo mode: orders from the sandbox appear within seconds. HUB_DEMO=false turns it off.")
        lines.append("Ctrl-C stops everything.")
        self.stdout.write("\n".join(lines))
        self.stdout.write(self.style.SUCCESS(f"VTEX order hub running: admin at http://{host}:{port}/admin/"))
        if password and from_env:
            self.stdout.write("Log in as 'admin' with the password from HUB_ADMIN_PASSWORD.")
        elif password:
            self.stdout.write(f"Log in as 'admin' with the password: {password}  (shown once; change it in the admin)")
        else:
            self.stdout.write("Log in with your admin user (python manage.py changepassword admin to reset it).")
        self.stdout.write("")
        self.stdout.flush()

    def _stop_all(self, procs):
        for name, proc in procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {GRACE_SECONDS}s; killing it.")
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # A child that exited may leave processes of its own (qcluster's workers) behind.
            _signal_group(proc, signal.SIGKILL)
        self.stdout.write("Stopped.")


def local_url(host, port):
    """The URL this machine reaches the web server at (a server on every address answers on loopback)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def _signal_group(proc, signum):
    """Signal the child's whole process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def sandbox_environment():
    """The environment that lets ``python -m vtex_sandbox`` import the package this process sees.

    The sandbox is a top-level package of the source checkout, outside the hub's wheel: without it,
    demo mode stops here with a clear message instead of a child process dying on an import error.
    """
    try:
        import vtex_sandbox
    except ImportError:
        raise CommandError(NO_SANDBOX) from None
    location = str(Path(vtex_sandbox.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=location + (os.pathsep + path if path else ""))
