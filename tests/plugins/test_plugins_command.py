"""`manage.py plugins` lists plugins, versions, adapters, hooks and load errors (no database needed)."""
import importlib.metadata
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integration.plugins.manager import reset_registry


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    for dist in ("hub-sample-adapter", "hub-broken-adapter"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{dist} is not on sys.path (tests/plugins/conftest.py puts it there)")
    reset_registry()
    yield
    reset_registry()


def run(*args):
    out = StringIO()
    call_command("plugins", *args, stdout=out)
    return out.getvalue()


def test_text_listing():
    output = run()
    assert "erp_plugins.webhook" in output and "erp_plugins.file_drop" in output
    assert "built-in" in output
    sample_line = next(line for line in output.splitlines() if line.strip().startswith("sample "))
    assert "1.2.0" in sample_line and "hub-sample-adapter" in sample_line
    assert "adapters: sample_echo" in output
    assert "hooks: erp_adapters, sync_succeeded" in output
    assert "adapters: webhook" in output and "adapters: file_drop" in output
    assert "Load errors:" in output
    error_line = next(line for line in output.splitlines() if "broken (" in line)
    assert "hub-broken-adapter 0.0.1" in error_line
    assert "RuntimeError: hub-broken-adapter fails on import" in error_line


def test_json_listing():
    data = json.loads(run("--json"))
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["sample"] == {
        "name": "sample", "version": "1.2.0", "distribution": "hub-sample-adapter",
        "adapters": ["sample_echo"], "hooks": ["erp_adapters", "sync_succeeded"], "builtin": False,
    }
    assert plugins["erp_plugins.webhook"]["builtin"] is True
    assert plugins["erp_plugins.file_drop"]["adapters"] == ["file_drop"]
    [error] = [e for e in data["load_errors"] if e["name"] == "broken"]
    assert error["distribution"] == "hub-broken-adapter" and error["version"] == "0.0.1"
    assert error["error"].startswith("RuntimeError:")
    assert "Traceback" in error["traceback"]
    assert data["adapters"].items() >= {"file_drop": "erp_plugins.file_drop", "sample_echo": "sample",
                                        "webhook": "erp_plugins.webhook"}.items()


def test_disabled_plugins_and_strict(monkeypatch):
    with pytest.raises(CommandError):
        run("--strict")
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", "broken")
    reset_registry()
    output = run("--strict")
    assert "Disabled by HUB_DISABLE_PLUGINS: broken" in output
    assert "Load errors:" not in output
