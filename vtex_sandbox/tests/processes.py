"""Test helper: a `python -m ...` server of this package run as a real process."""
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Served:
    """A `python -m ...` server started on a free port; `url` is read from its 'listening on' line."""

    def __init__(self, module, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", module, "--port", "0", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        for line in self.proc.stdout:  # bounded: the process either prints the line or exits
            self.lines.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return
        self.proc.wait(10)
        raise AssertionError(f"{module} did not start: {''.join(self.lines)}")

    def stop(self, signum=signal.SIGTERM):
        """Signal the process; return (exit code, everything it printed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=15)  # its output is a few lines: the pipe cannot fill up
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, "".join(self.lines) + self.proc.stdout.read()
