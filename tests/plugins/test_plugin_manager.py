"""Loading plugins (built-ins and entry points), load errors, and per-plugin observer calls.

The entry-point tests use the two sample packages, pip-installed into a temporary directory on
sys.path by tests/plugins/conftest.py (never into the virtualenv). They fail, not skip, when these
cannot be found.
"""
import importlib.metadata
import logging
import threading

import pytest

from erp_plugins.file_drop.adapter import FileDropAdapter
from erp_plugins.webhook.adapter import WebhookAdapter
from integration.plugins import Adapter, Delivery, hookimpl
from integration.plugins.manager import (
    PluginRegistry,
    get_registry,
    notify,
    reset_registry,
)
from integration.plugins.parsed_order import parse_order

INSTALL_HINT = "the sample plugin packages are not on sys.path (tests/plugins/conftest.py puts them there)"


def require_fixture_packages():
    for dist in ("hub-sample-adapter", "hub-broken-adapter"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{dist}: {INSTALL_HINT}")


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    return PluginRegistry().load()


@pytest.fixture
def global_registry(monkeypatch):
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    reset_registry()
    yield get_registry()
    reset_registry()


class Recorder:
    """An in-test plugin implementing every observer hook."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def sync_succeeded(self, sync):
        self.calls.append(("sync_succeeded", sync))

    @hookimpl
    def sync_failed(self, sync, error):
        self.calls.append(("sync_failed", sync, error))

    @hookimpl
    def feed_cycle_finished(self, account, summary):
        self.calls.append(("feed_cycle_finished", account, summary))


class Exploder:
    @hookimpl
    def sync_succeeded(self, sync):
        raise RuntimeError("alerting backend down")

    @hookimpl
    def sync_failed(self, sync, error):
        raise KeyError("nope")

    @hookimpl
    def feed_cycle_finished(self, account, summary):
        raise ZeroDivisionError("bad math")


# --- built-ins --------------------------------------------------------------------------------

def test_builtins_are_registered_through_the_hook(registry):
    assert registry.get_adapter_class("webhook") is WebhookAdapter
    assert registry.get_adapter_class("file_drop") is FileDropAdapter
    assert registry.adapter_plugin["webhook"] == "erp_plugins.webhook"
    assert registry.adapter_plugin["file_drop"] == "erp_plugins.file_drop"
    impl_plugins = {impl.plugin_name for impl in registry.pm.hook.erp_adapters.get_hookimpls()}
    assert {"erp_plugins.webhook", "erp_plugins.file_drop"} <= impl_plugins
    info = {p["name"]: p for p in registry.plugins_info()}
    webhook = info["erp_plugins.webhook"]
    assert webhook["builtin"] is True
    assert webhook["adapters"] == ["webhook"]
    assert webhook["hooks"] == ["erp_adapters"]
    assert webhook["distribution"] == "vtex-order-hub"
    assert registry.get_adapter_class("nope") is None


# --- entry points -----------------------------------------------------------------------------

def test_sample_package_found_through_its_entry_point(registry):
    require_fixture_packages()
    cls = registry.get_adapter_class("sample_echo")
    assert cls is not None, f"sample_echo not loaded; load errors: {registry.load_errors}"
    assert registry.adapter_plugin["sample_echo"] == "sample"
    info = {p["name"]: p for p in registry.plugins_info()}["sample"]
    assert info == {
        "name": "sample", "version": "1.2.0", "distribution": "hub-sample-adapter",
        "adapters": ["sample_echo"], "hooks": ["erp_adapters", "sync_succeeded"], "builtin": False,
    }
    adapter = cls(cls.validate_settings({}))
    raw = {"orderId": "42-01", "items": [{"id": "1", "quantity": 1, "price": 100}]}
    delivery = adapter.send_order(parse_order(raw), raw, "idem")
    assert isinstance(delivery, Delivery) and delivery.reference == "echo-42-01"


def test_broken_package_is_reported_and_the_others_still_load(monkeypatch, caplog):
    require_fixture_packages()
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    with caplog.at_level(logging.ERROR, logger="integration.plugins"):
        registry = PluginRegistry().load()
    [error] = [e for e in registry.load_errors if e.name == "broken"]
    assert error.distribution == "hub-broken-adapter"
    assert error.version == "0.0.1"
    assert error.error.startswith("RuntimeError: hub-broken-adapter fails on import")
    assert "hub_broken_adapter/plugin.py" in error.traceback
    assert {"webhook", "file_drop", "sample_echo"} <= set(registry.adapters)
    assert "broken" not in {p["name"] for p in registry.plugins_info()}
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.name == "integration.plugins"
    assert "RuntimeError" in record.getMessage() and "\n" not in record.getMessage()


def test_hub_disable_plugins_blocks_named_plugins(monkeypatch):
    require_fixture_packages()
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", " broken, sample ,erp_plugins.file_drop")
    registry = PluginRegistry().load()
    assert not [e for e in registry.load_errors if e.name in ("broken", "sample")]
    assert "webhook" in registry.adapters
    assert "sample_echo" not in registry.adapters and "file_drop" not in registry.adapters
    assert set(registry.disabled) == {"broken", "sample", "erp_plugins.file_drop"}
    names = {p["name"] for p in registry.plugins_info()}
    assert "erp_plugins.webhook" in names
    assert not names & {"broken", "sample", "erp_plugins.file_drop"}


# --- registration problems --------------------------------------------------------------------

class DuplicateWebhook(Adapter):
    key = "webhook"
    label = "Impostor"


class Fresh(Adapter):
    key = "fresh"
    label = "Fresh"


class DuplicatePlugin:
    @hookimpl
    def erp_adapters(self):
        return [DuplicateWebhook, Fresh]


def test_duplicate_adapter_key_is_a_load_error(registry, caplog):
    with caplog.at_level(logging.ERROR, logger="integration.plugins"):
        registry.register(DuplicatePlugin(), "impostor")
    assert registry.get_adapter_class("webhook") is WebhookAdapter
    assert registry.get_adapter_class("fresh") is Fresh  # the plugin's other adapter still loads
    [error] = [e for e in registry.load_errors if e.name == "impostor"]
    assert "'webhook' is already provided by plugin 'erp_plugins.webhook'" in error.error
    assert any("impostor" in r.getMessage() for r in caplog.records)


def test_failing_or_bad_erp_adapters_hook_is_a_load_error(registry):
    class Raises:
        @hookimpl
        def erp_adapters(self):
            raise ImportError("missing SDK")

    class NotAnAdapter:
        @hookimpl
        def erp_adapters(self):
            return [object, dict]

    class NoKey(Adapter):
        label = "No key"

    class BadActions(Adapter):
        key = "bad_actions"
        label = "Bad"
        actions = frozenset({"refund"})

    class Invalid:
        @hookimpl
        def erp_adapters(self):
            return [NoKey, BadActions]

    registry.register(Raises(), "raises")
    registry.register(NotAnAdapter(), "not-adapter")
    registry.register(Invalid(), "invalid")
    errors = {(e.name, e.error) for e in registry.load_errors}
    assert ("raises", "ImportError: missing SDK") in errors
    assert len([e for e in registry.load_errors if e.name == "not-adapter"]) == 2
    assert len([e for e in registry.load_errors if e.name == "invalid"]) == 2
    assert "bad_actions" not in registry.adapters
    assert {"webhook", "file_drop"} <= set(registry.adapters)


def test_misspelt_hook_is_a_load_error(registry):
    class Typo:
        @hookimpl
        def sync_succeded(self, sync):
            pass

    assert registry.register(Typo(), "typo") is False
    [error] = [e for e in registry.load_errors if e.name == "typo"]
    assert "sync_succeded" in error.error
    assert registry.pm.get_plugin("typo") is None


def test_unregister_removes_adapters(registry):
    class Provides:
        @hookimpl
        def erp_adapters(self):
            return [Fresh]

    registry.register(Provides(), "provides")
    assert registry.get_adapter_class("fresh") is Fresh
    registry.unregister("provides")
    assert registry.get_adapter_class("fresh") is None
    assert "provides" not in {p["name"] for p in registry.plugins_info()}


# --- observers --------------------------------------------------------------------------------

@pytest.mark.parametrize("exploder_first", [True, False])
def test_an_observer_that_raises_does_not_stop_the_others(registry, caplog, exploder_first):
    recorder = Recorder()
    plugins = [("exploder", Exploder()), ("recorder", recorder)]
    for name, plugin in plugins if exploder_first else reversed(plugins):
        registry.register(plugin, name)
    sync, account = object(), object()
    summary = {"fetched": 3, "new": 2, "duplicate": 1, "committed": 3, "error": ""}
    with caplog.at_level(logging.ERROR, logger="integration.plugins"):
        registry.notify("sync_succeeded", sync=sync)
        registry.notify("sync_failed", sync=sync, error="ERP said 422")
        failures = registry.notify("feed_cycle_finished", account=account, summary=summary)
    assert recorder.calls == [
        ("sync_succeeded", sync),
        ("sync_failed", sync, "ERP said 422"),
        ("feed_cycle_finished", account, summary),
    ]
    assert [name for name, _ in failures] == ["exploder"]
    messages = [r.getMessage() for r in caplog.records if r.name == "integration.plugins"]
    assert len(messages) == 3
    assert all("exploder" in m for m in messages)
    assert any("alerting backend down" in m for m in messages)


def test_module_notify_uses_the_global_registry_and_never_raises(global_registry):
    require_fixture_packages()
    from hub_sample_adapter import plugin as sample_plugin

    recorder = Recorder()
    global_registry.register(Exploder(), "exploder")
    global_registry.register(recorder, "recorder")
    sample_plugin.EVENTS.clear()
    sync = object()
    assert notify("sync_succeeded", sync=sync) is None
    assert recorder.calls == [("sync_succeeded", sync)]
    assert sample_plugin.EVENTS == [("sync_succeeded", sync)]  # the entry-point plugin's observer too


def test_notify_rejects_unknown_hooks_and_missing_arguments(registry):
    with pytest.raises(ValueError):
        registry.notify("sync_exploded", sync=1)
    with pytest.raises(TypeError):
        registry.notify("sync_failed", sync=1)


# --- the process-wide registry ----------------------------------------------------------------

def test_get_registry_is_loaded_once_and_thread_safe(monkeypatch):
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    reset_registry()
    try:
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(get_registry())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and all(r is seen[0] for r in seen)
        assert get_registry() is seen[0]
        reset_registry()
        assert get_registry() is not seen[0]
    finally:
        reset_registry()
