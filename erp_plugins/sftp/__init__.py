"""Built-in plugin: upload one file per order to an SFTP server and pick up invoice / tracking
files from an inbound folder. Needs the `sftp` extra (paramiko)."""
from integration.plugins import PluginUnavailable, hookimpl

try:
    import paramiko  # noqa: F401  (imported here so that a missing extra is reported, not a traceback)
except ImportError as exc:
    raise PluginUnavailable(
        f"the sftp adapter needs the 'sftp' extra: pip install 'vtex-order-hub[sftp]' ({exc})"
    ) from exc

from erp_plugins.sftp.adapter import SftpAdapter  # noqa: E402


@hookimpl
def erp_adapters():
    return [SftpAdapter]
