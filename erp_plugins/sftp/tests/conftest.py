"""The sftp adapter's tests run against a real OpenSSH sshd: the session-wide `ssh_server` fixture
(tests/ssh_server.py, registered for every test by tests/shared_fixtures.py)."""
import pytest


@pytest.fixture(autouse=True)
def _empty_pool():
    """Pooled SSH sessions are per process: start and end each test with none."""
    from erp_plugins.sftp.adapter import POOL

    POOL.close_all()
    yield
    POOL.close_all()
