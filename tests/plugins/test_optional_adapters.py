"""The amqp and sftp adapters are built-ins with optional dependencies: listed with their version
when the extra is installed, listed as unavailable (with the pip command) when it is not."""
import json
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from integration.plugins import UPDATES, Adapter, hookimpl, hub_version
from integration.plugins.manager import PluginRegistry, reset_registry


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def plugins_json():
    out = StringIO()
    call_command("plugins", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_both_adapters_are_listed_with_the_hub_version_when_their_extras_are_installed():
    data = plugins_json()
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["erp_plugins.amqp"]["adapters"] == ["amqp"]
    assert plugins["erp_plugins.sftp"]["adapters"] == ["sftp"]
    assert plugins["erp_plugins.amqp"]["version"] == hub_version() and plugins["erp_plugins.sftp"]["builtin"]
    assert data["unavailable"] == []


def test_a_missing_extra_makes_the_adapter_unavailable_with_the_reason_not_a_load_error(monkeypatch):
    # As if pika and paramiko were not installed: importing them raises ImportError.
    monkeypatch.setitem(sys.modules, "pika", None)
    monkeypatch.setitem(sys.modules, "paramiko", None)
    for name in [m for m in sys.modules if m.startswith(("erp_plugins.amqp", "erp_plugins.sftp"))]:
        monkeypatch.delitem(sys.modules, name)
    data = plugins_json()
    unavailable = {u["name"]: u["reason"] for u in data["unavailable"]}
    assert "pip install 'vtex-order-hub[amqp]'" in unavailable["erp_plugins.amqp"]
    assert "pip install 'vtex-order-hub[sftp]'" in unavailable["erp_plugins.sftp"]
    assert "amqp" not in data["adapters"] and "webhook" in data["adapters"]
    assert not [e for e in data["load_errors"] if e["name"].startswith("erp_plugins.")]
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", "broken")  # the test suite's broken-on-purpose plugin
    reset_registry()
    out = StringIO()
    call_command("plugins", "--strict", stdout=out)  # an optional extra missing is not an error
    text = out.getvalue()
    assert "Unavailable (an optional dependency is not installed):" in text
    assert "erp_plugins.sftp" in text and "vtex-order-hub[sftp]" in text


def test_a_capability_must_be_known_and_implemented():
    class NoPoll(Adapter):
        key, label, capabilities = "no_poll", "No poll", frozenset({UPDATES})

    class Unknown(Adapter):
        key, label, capabilities = "unknown_cap", "Unknown", frozenset({"teleport"})

    class Plugin:
        @hookimpl
        def erp_adapters(self):
            return [NoPoll, Unknown]

    registry = PluginRegistry()
    registry.register(Plugin(), "caps")
    errors = " | ".join(e.error for e in registry.load_errors)
    assert "declares the capability 'updates' but does not implement poll_updates" in errors
    assert "unknown capabilities ['teleport']" in errors
    assert "no_poll" not in registry.adapters and "unknown_cap" not in registry.adapters
