"""A real OpenSSH sshd, for the sftp adapter's tests and the end-to-end run: started on a free
loopback port with a throw-away host key, and a throw-away system user (password and key login)
whose home is a temp folder. Needs root (useradd) and /usr/sbin/sshd (Debian's openssh-server).
Without them the tests are skipped, except when HUB_REQUIRE_SERVERS=1 (CI), where they fail.
The `ssh_server` fixture is registered for the whole run by tests/shared_fixtures.py.
"""
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

import pytest

SSHD = "/usr/sbin/sshd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "hub-test", "-f", str(path)], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True).stdout
    return fingerprint.split()[1]  # "256 SHA256:... comment (ED25519)"


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    password: str
    home: Path
    fingerprint: str  # the host key's
    other_fingerprint: str  # of a key the server does not have
    client_key: str  # private key text, authorized for `user`
    uid: int
    gid: int

    def folder(self, name):
        """A fresh folder in the user's home, owned by the user."""
        path = self.home / f"{name}-{secrets.token_hex(3)}"
        path.mkdir()
        os.chown(path, self.uid, self.gid)
        return path


@pytest.fixture(scope="session")
def ssh_server():
    from tests.shared_fixtures import server_missing  # here: shared_fixtures imports this module

    if not os.path.exists(SSHD):
        server_missing(f"{SSHD} is missing (apt-get install openssh-server)")
    if os.geteuid() != 0:
        server_missing("the SFTP tests create a throw-away system user and need root")
    base = Path(tempfile.mkdtemp(prefix="hub-sftp-"))
    base.chmod(0o755)
    user = f"hubsftp{secrets.token_hex(3)}"
    password = "pw-" + secrets.token_hex(8)
    home = base / "home"
    created = False
    process = None
    try:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", user],
                       check=True, capture_output=True)
        created = True
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)
        entry = pwd.getpwnam(user)
        home.mkdir()
        os.chown(home, entry.pw_uid, entry.pw_gid)
        host_key_fp = keygen(base / "host_ed25519")
        other_fp = keygen(base / "other_host_ed25519")
        keygen(base / "client_ed25519")
        keys_dir = base / "authorized"
        keys_dir.mkdir()
        shutil.copy(base / "client_ed25519.pub", keys_dir / user)
        port = free_port()
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_ed25519'}",
            f"PidFile {base / 'sshd.pid'}", f"AuthorizedKeysFile {keys_dir}/%u", "StrictModes no", "UsePAM no",
            "PasswordAuthentication yes", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin no", f"AllowUsers {user}", "Subsystem sftp internal-sftp", "LogLevel ERROR",
            "MaxStartups 100", "",
        ]))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                server_missing(f"sshd exited: {process.stderr.read().decode(errors='replace')[:500]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    server_missing("sshd did not start listening within 15 s")
                time.sleep(0.05)
        yield SshServer("127.0.0.1", port, user, password, home, host_key_fp, other_fp,
                        (base / "client_ed25519").read_text(), entry.pw_uid, entry.pw_gid)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if created:
            # The user's session processes exit just after sshd; userdel refuses while one lives.
            deadline = time.monotonic() + 10
            while subprocess.run(["userdel", user], capture_output=True).returncode == 8 and time.monotonic() < deadline:
                time.sleep(0.1)
            subprocess.run(["userdel", "--force", user], capture_output=True)  # no-op once deleted
        shutil.rmtree(base, ignore_errors=True)
