"""The plugin system: hook specs, the adapter contract, the registry and the parsed order.

Plugin authors need only this package, the hub's public plugin API::

    from integration.plugins import hookimpl, Adapter, Setting, Delivery, PermanentError, TransientError

It also re-exports what an adapter may use besides: the parsed order, the redaction helpers
(`redact`, `excerpt`, `register_secret`, …), the plain values the observer hooks receive, and the
kept-alive connections: `ConnectionPool` and `http_session`.
"""
import functools
import importlib.metadata
import tomllib
from pathlib import Path

from integration.plugins.contract import (
    ACTIONS,
    CANCEL,
    CAPABILITIES,
    SEND,
    STATUS,
    UPDATES,
    Adapter,
    AdapterError,
    Delivery,
    PermanentError,
    PluginUnavailable,
    Setting,
    SettingsError,
    TransientError,
)
from integration.plugins.events import AlertInfo, StoreInfo, SyncInfo
from integration.plugins.filenames import file_name_problem, safe_part
from integration.plugins.hookspecs import PROJECT_NAME, hookimpl, hookspec
from integration.plugins.parsed_order import InvalidOrder, ParsedOrder, parse_order
from integration.plugins.pool import ConnectionPool
from integration.plugins.sessions import http_session
from integration.plugins.updates import (
    UPDATE_KINDS,
    InboundUpdate,
    MalformedUpdate,
    UpdateReceipt,
    parse_update_message,
)
# Adapters bound their excerpts and keep the credentials they handle out of logs and the admin.
from integration.redaction import REDACTED, excerpt, is_secret_name, redact, redact_headers, register_secret

__all__ = [
    "ACTIONS", "CANCEL", "CAPABILITIES", "ConnectionPool", "SEND", "STATUS", "UPDATES", "Adapter", "AdapterError",
    "Delivery", "PermanentError", "PluginUnavailable", "Setting", "SettingsError", "TransientError", "PROJECT_NAME",
    "hookimpl", "hookspec", "hub_version", "InvalidOrder", "ParsedOrder", "parse_order", "UPDATE_KINDS",
    "InboundUpdate", "MalformedUpdate", "UpdateReceipt", "parse_update_message",
    "REDACTED", "excerpt", "is_secret_name", "redact", "redact_headers", "register_secret",
    "AlertInfo", "StoreInfo", "SyncInfo", "file_name_problem", "safe_part", "http_session",
]

DISTRIBUTION_NAME = "vtex-order-hub"


@functools.lru_cache(maxsize=1)
def hub_version() -> str:
    """The hub's version: from the installed distribution, else from a source checkout's pyproject."""
    try:
        return importlib.metadata.version(DISTRIBUTION_NAME)
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return "0+unknown"
