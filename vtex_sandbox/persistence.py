"""The state file: a sandbox's stores, orders, feeds and hooks kept across restarts in one JSON file.

The file is replaced atomically (written to a temporary file in the same directory, flushed to
disk, then renamed over the old one), so a crash or a kill mid-write leaves the previous state,
never half of one. A background thread writes it at most every ``interval_s`` seconds while the
state changes, and once more when the sandbox closes.

Fault switches and call statistics are not kept: a restart clears them.
"""
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

FORMAT = 1
log = logging.getLogger("vtex_sandbox")


class StateFileError(Exception):
    """The state file exists but cannot be used (unreadable, not JSON, or not a sandbox state)."""


def read_state(path):
    """The state saved at ``path``, or None when there is no file yet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read the state file {path}: {exc}") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"the state file {path} is not valid JSON ({exc}); "
                             "move it away to start with an empty sandbox") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StateFileError(f"the state file {path} is not a vtex_sandbox state (format {FORMAT}); "
                             "move it away to start with an empty sandbox")
    return state


def write_atomic(path, data):
    """Replace ``path`` with ``data`` (bytes) so that readers see the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class StateKeeper:
    """Loads a sandbox's state from ``path`` and writes it back whenever it changed."""

    def __init__(self, sandbox, path, interval_s=0.5):
        self.sandbox = sandbox
        self.path = Path(path)
        self.interval_s = interval_s
        self._saved_version = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def load(self):
        """Restore the saved state into the sandbox; return False when there was no file yet."""
        state = read_state(self.path)
        if state is None:
            return False
        self.sandbox.restore_state(state)
        self._saved_version = self.sandbox.state_version()
        return True

    def save(self):
        """Write the state now if it changed since the last write; return True when written."""
        with self._write_lock:
            version, state = self.sandbox.dump_state()
            if version == self._saved_version:
                return False
            write_atomic(self.path, json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            self._saved_version = version
            return True

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-state-keeper", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.save()
            except OSError as exc:  # a full disk must not kill the sandbox: retry at the next tick
                log.error("cannot write the state file %s: %s", self.path, exc)

    def stop(self):
        """Stop the background writer and write the final state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.save()
