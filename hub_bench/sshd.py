"""A throw-away OpenSSH server for the sftp adapter's figures, started like the sftp tests do
(erp_plugins/sftp/tests/conftest.py): a free loopback port, a fresh host key, a throw-away system
user with a password whose home is a temporary folder. Needs root (useradd) and /usr/sbin/sshd.
"""
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


class SshdUnavailable(RuntimeError):
    pass


@dataclass
class Sshd:
    port: int
    user: str
    password: str
    fingerprint: str
    folder: Path  # where the adapter writes: watched by the dir-sink


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hub-bench", "-f", str(path)], check=True)
    out = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


@contextlib.contextmanager
def throwaway_sshd():
    if not os.path.exists(SSHD):
        raise SshdUnavailable(f"{SSHD} is missing (apt-get install openssh-server)")
    if os.geteuid() != 0:
        raise SshdUnavailable("the sftp run creates a throw-away system user and needs root")
    base = Path(tempfile.mkdtemp(prefix="hub-bench-sftp-"))
    base.chmod(0o755)
    user, password = f"hubbench{secrets.token_hex(3)}", "pw-" + secrets.token_hex(8)
    home = base / "home"
    created, process = False, None
    try:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", user],
                       check=True, capture_output=True)
        created = True
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)
        entry = pwd.getpwnam(user)
        folder = home / "orders"
        folder.mkdir(parents=True)
        for path in (home, folder):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        fingerprint = _keygen(base / "host_ed25519")
        port = _free_port()
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_ed25519'}", f"PidFile {base / 'sshd.pid'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication yes", "KbdInteractiveAuthentication no",
            "PermitRootLogin no", f"AllowUsers {user}", "Subsystem sftp internal-sftp", "LogLevel ERROR",
            "MaxStartups 100", "MaxSessions 100", "",
        ]))
        os.makedirs("/run/sshd", exist_ok=True)
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise SshdUnavailable(f"sshd exited: {process.stderr.read().decode(errors='replace')[:500]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SshdUnavailable("sshd did not listen within 15 s")
                time.sleep(0.05)
        yield Sshd(port, user, password, fingerprint, folder)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if created:
            deadline = time.monotonic() + 10
            while subprocess.run(["userdel", user], capture_output=True).returncode == 8 and time.monotonic() < deadline:
                time.sleep(0.1)
            subprocess.run(["userdel", "--force", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
