"""The plugin system: hook specs, the adapter contract, the registry and the parsed order.

Plugin authors need only this package::

    from integration.plugins import hookimpl, Adapter, Setting, Delivery, PermanentError, TransientError
"""
import functools
import importlib.metadata
import tomllib
from pathlib import Path

from integration.plugins.contract import (
    ACTIONS,
    CANCEL,
    SEND,
    STATUS,
    Adapter,
    AdapterError,
    Delivery,
    PermanentError,
    Setting,
    SettingsError,
    TransientError,
)
from integration.plugins.hookspecs import PROJECT_NAME, hookimpl, hookspec
from integration.plugins.updates import UPDATE_KINDS, InboundUpdate, UpdateReceipt

__all__ = [
    "ACTIONS", "CANCEL", "SEND", "STATUS", "Adapter", "AdapterError", "Delivery", "PermanentError",
    "Setting", "SettingsError", "TransientError", "PROJECT_NAME", "hookimpl", "hookspec", "hub_version",
    "UPDATE_KINDS", "InboundUpdate", "UpdateReceipt",
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
