"""Built-in plugin: upload one file per order to an SFTP server and pick up invoice / tracking
files from an inbound folder. Needs the `sftp` extra (paramiko)."""
from integration.plugins import PluginUnavailable, hookimpl

from importlib.util import find_spec

# Found, not imported: paramiko is imported when an SFTP binding first connects (erp_plugins.sftp.adapter),
# so that a hub without one does not load it (20 MB and 0.15 s of CPU in every process start).
if find_spec("paramiko") is None:
    raise PluginUnavailable("the sftp adapter needs the 'sftp' extra: pip install 'vtex-order-hub[sftp]' "
                            "(No module named 'paramiko')")

from erp_plugins.sftp.adapter import SftpAdapter  # noqa: E402


@hookimpl
def erp_adapters():
    return [SftpAdapter]
