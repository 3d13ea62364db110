"""Installing and removing plugin packages in the hub's own environment, and what a restart would change.

`manage.py install_plugin` / `uninstall_plugin` run pip with the interpreter that runs the hub (so the
package lands where the web server and the qclusters will find it), then ask a fresh process what it
loads: a process that has already imported its plugins cannot see a new one until it restarts, and the
*Installed plugins* page says so by comparing what this process loaded with what is installed now.
"""
import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from integration.plugins.manager import ENTRY_POINT_GROUP

RESTART_HINT = (
    "Restart the hub's processes to load the change: the web server and every qcluster "
    "(`make run`: Ctrl-C, then `make run` again; under a process manager, restart its services)."
)


class PluginCommandError(Exception):
    """pip or the fresh `manage.py plugins` process failed; the message says how."""


def run_pip(*args):
    """`python -m pip ARGS` with the hub's interpreter; returns (ok, output)."""
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
                            capture_output=True, text=True)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def plugins_snapshot():
    """What a freshly started hub process loads: `manage.py plugins --json` in a new interpreter."""
    # Load errors are logged too, on stdout with the rest of the log: keep stdout for the JSON alone.
    env = dict(os.environ, LOG_LEVEL="CRITICAL")
    result = subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "plugins", "--json"],
                            capture_output=True, text=True, cwd=settings.BASE_DIR, env=env)
    if result.returncode != 0:
        raise PluginCommandError(f"`manage.py plugins --json` failed:\n{result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


@dataclass
class Change:
    added: list = field(default_factory=list)      # plugin dicts (name, version, distribution, adapters, hooks)
    upgraded: list = field(default_factory=list)   # (old version, plugin dict)
    removed: list = field(default_factory=list)    # plugin dicts
    new_errors: list = field(default_factory=list)  # load error dicts


def compare(before, after):
    """What changed between two snapshots of `manage.py plugins --json`."""
    old = {p["name"]: p for p in before["plugins"]}
    new = {p["name"]: p for p in after["plugins"]}
    old_errors = {(e["name"], e["error"]) for e in before["load_errors"]}
    change = Change()
    for name, plugin in new.items():
        if name not in old:
            change.added.append(plugin)
        elif old[name]["version"] != plugin["version"]:
            change.upgraded.append((old[name]["version"], plugin))
    change.removed = [p for name, p in old.items() if name not in new]
    change.new_errors = [e for e in after["load_errors"] if (e["name"], e["error"]) not in old_errors]
    return change


def distribution_of(name, snapshot):
    """The distribution that provides plugin `name` (or is called `name`), and whether it is built in."""
    for plugin in snapshot["plugins"] + snapshot["load_errors"]:
        if name in (plugin["name"], plugin.get("distribution")):
            return plugin.get("distribution"), bool(plugin.get("builtin"))
    try:
        return importlib.metadata.distribution(name).name, False
    except importlib.metadata.PackageNotFoundError:
        return None, False


def restart_pending(registry):
    """Differences between the plugins this process loaded and the packages installed now.

    Returns a list of (plugin name, what is pending) for the *Installed plugins* page.
    """
    installed = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        installed.setdefault(ep.name, (getattr(dist, "name", None), getattr(dist, "version", None)))
    loaded = {p["name"]: p for p in registry.plugins_info() if not p["builtin"]}
    known = set(loaded) | {e.name for e in registry.load_errors} | set(registry.disabled)
    pending = []
    for name, (dist, version) in sorted(installed.items()):
        if name not in known:
            pending.append((name, f"installed ({dist} {version}), loaded after a restart"))
        elif name in loaded and loaded[name]["version"] != version:
            pending.append((name, f"{dist} {version} installed, {loaded[name]['version']} running until a restart"))
    for name, plugin in sorted(loaded.items()):
        if name not in installed and plugin["distribution"]:
            pending.append((name, f"uninstalled ({plugin['distribution']}), still running until a restart"))
    return pending
