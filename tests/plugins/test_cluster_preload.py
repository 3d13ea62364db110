"""`manage.py qcluster` loads the tasks and the plugins, and freezes the heap, before django-q2's
cluster forks its processes: the workers then share that memory instead of each loading a copy.

The hub's cluster (django-q2's Cluster with the stop flag) is replaced by a stand-in that records
what the process held when the cluster was started (the moment it would fork), so no process is
forked here; tests/e2e/test_runhub.py starts and stops the real one."""
import gc
import sys

import pytest
from django.core.management import call_command

from integration import shutdown
from integration.management.commands import qcluster as hub_qcluster
from integration.plugins import manager


class ClusterAtFork:
    """Stands in for the hub's cluster: what was loaded when `start()` would fork."""

    seen = None

    def start(self):
        registry = manager._registry
        ClusterAtFork.seen = {
            "registry": registry,
            "tasks_loaded": "integration.tasks" in sys.modules,
            "frozen": gc.get_freeze_count(),
            "stop_flag": shutdown._flag,
        }
        return 0


@pytest.fixture(autouse=True)
def cluster_at_fork(monkeypatch):
    monkeypatch.setattr(hub_qcluster, "HubCluster", ClusterAtFork)
    monkeypatch.delenv("HUB_DISABLE_PLUGINS", raising=False)
    ClusterAtFork.seen = None
    manager.reset_registry()
    yield
    gc.unfreeze()  # the test process's objects go back to the collector
    manager.reset_registry()


def test_the_cluster_starts_with_the_plugins_and_tasks_loaded_and_the_heap_frozen():
    call_command("qcluster")
    seen = ClusterAtFork.seen
    assert seen["registry"] is not None
    assert {"webhook", "file_drop", "amqp", "sftp"} <= set(seen["registry"].adapters)
    assert seen["tasks_loaded"]
    assert seen["frozen"] > 0
    # The stop flag exists before the fork (the workers inherit it) and is not set yet.
    assert seen["stop_flag"] is not None and not seen["stop_flag"].is_set()


def test_a_broken_plugin_is_recorded_and_does_not_stop_the_cluster():
    call_command("qcluster")
    registry = ClusterAtFork.seen["registry"]
    assert any(e.name == "broken" for e in registry.load_errors)  # tests/plugin_packages/hub-broken-adapter
    assert "sample_echo" in registry.adapters


def test_an_adapter_whose_extra_is_missing_is_still_listed_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "paramiko", None)  # as if the sftp extra were not installed
    for name in [m for m in sys.modules if m.startswith("erp_plugins.sftp")]:
        monkeypatch.delitem(sys.modules, name)
    call_command("qcluster")
    registry = ClusterAtFork.seen["registry"]
    assert "sftp" not in registry.adapters
    assert any(u.name == "erp_plugins.sftp" and "vtex-order-hub[sftp]" in u.reason for u in registry.unavailable)
    assert not [e for e in registry.load_errors if e.name.startswith("erp_plugins.")]


def test_without_the_preload_the_workers_load_the_plugins_themselves(settings):
    settings.Q_CLUSTER_PRELOAD = False
    call_command("qcluster")
    assert ClusterAtFork.seen["registry"] is None
    assert ClusterAtFork.seen["frozen"] == 0
