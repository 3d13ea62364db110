"""Finding, loading and calling plugins.

Built-in adapters (`erp_plugins.*`) are registered through the same hooks as third-party ones.
Third-party plugins are entry points in the group `erp_plugins`; each is loaded inside its own
try/except, so a broken plugin is reported (log line + `load_errors`, shown by
`manage.py plugins` and the admin) and never stops the others.

Hooks are never called as a pluggy broadcast (where the first exception stops the rest):
`erp_adapters` is called once per plugin at load time, and observers go through `notify`, which
calls each implementation on its own.
"""
import importlib
import importlib.metadata
import logging
import os
import re
import threading
import traceback as traceback_module
from dataclasses import dataclass

import pluggy

from integration.plugins import DISTRIBUTION_NAME, hookspecs, hub_version
from integration.plugins.contract import ACTIONS, CAPABILITIES, UPDATES, Adapter, PluginUnavailable, Setting

logger = logging.getLogger("integration.plugins")

ENTRY_POINT_GROUP = "erp_plugins"
DISABLE_ENV = "HUB_DISABLE_PLUGINS"
BUILTIN_PLUGINS = (
    "erp_plugins.webhook", "erp_plugins.file_drop", "erp_plugins.amqp", "erp_plugins.sftp", "integration.alert_channels",
)
ADAPTER_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class LoadError:
    name: str  # plugin (entry point) name
    distribution: str | None
    version: str | None
    error: str  # one line: "ExceptionType: message"
    traceback: str = ""


@dataclass(frozen=True)
class Unavailable:
    """A plugin that raised PluginUnavailable on import: an optional dependency is not installed."""

    name: str
    distribution: str | None
    version: str | None
    reason: str


def _one_line(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


def disabled_plugin_names():
    raw = os.environ.get(DISABLE_ENV, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


class PluginRegistry:
    """The loaded plugins and the adapters they provide. Use `get_registry()` outside tests."""

    def __init__(self):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.adapters: dict[str, type[Adapter]] = {}
        self.adapter_plugin: dict[str, str] = {}
        self.load_errors: list[LoadError] = []
        self.unavailable: list[Unavailable] = []  # plugins missing an optional dependency (not errors)
        self.disabled: list[str] = []  # plugin names skipped because of HUB_DISABLE_PLUGINS
        self._distributions: dict[str, tuple[str | None, str | None]] = {}
        self._builtin: set[str] = set()
        self._lock = threading.RLock()

    # --- loading --------------------------------------------------------------------------------
    def load(self):
        """Register the built-ins, then every entry point of the group `erp_plugins`."""
        with self._lock:
            blocked = set(disabled_plugin_names())
            for name in blocked:
                self.pm.set_blocked(name)
            for module_name in BUILTIN_PLUGINS:
                if module_name in blocked:
                    self.disabled.append(module_name)
                    continue
                try:
                    module = importlib.import_module(module_name)
                except PluginUnavailable as exc:
                    self._record_unavailable(module_name, DISTRIBUTION_NAME, hub_version(), exc)
                    continue
                except Exception as exc:
                    self._record_error(module_name, DISTRIBUTION_NAME, hub_version(), exc)
                    continue
                self.register(module, module_name, distribution=DISTRIBUTION_NAME, version=hub_version(), builtin=True)
            self._load_entry_points(blocked)
        return self

    def _load_entry_points(self, blocked):
        seen = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = getattr(dist, "name", None) if dist is not None else None
            version = getattr(dist, "version", None) if dist is not None else None
            if ep.name in seen:
                # The same distribution seen twice on sys.path is harmless; two different
                # plugins under one name are not.
                if seen[ep.name] != ep.value:
                    self._record_error(
                        ep.name, dist_name, version,
                        ValueError(f"another plugin is already registered as {ep.name!r} ({seen[ep.name]})"),
                    )
                continue
            seen[ep.name] = ep.value
            if ep.name in blocked:
                self.disabled.append(ep.name)
                logger.info("plugin %s disabled by %s", ep.name, DISABLE_ENV)
                continue
            try:
                plugin = ep.load()
            except PluginUnavailable as exc:
                self._record_unavailable(ep.name, dist_name, version, exc)
                continue
            except Exception as exc:  # an ImportError, or anything the module raises on import
                self._record_error(ep.name, dist_name, version, exc)
                continue
            self.register(plugin, ep.name, distribution=dist_name, version=version)

    def register(self, plugin, name, *, distribution=None, version=None, builtin=False):
        """Register a plugin object (module or instance) and collect its adapters.

        Failures are recorded in `load_errors` (and logged), never raised. Returns True when the
        plugin was registered.
        """
        with self._lock:
            try:
                self.pm.register(plugin, name=name)
            except Exception as exc:  # PluginValidationError, ValueError (already registered)
                self._record_error(name, distribution, version, exc)
                return False
            if self.pm.get_plugin(name) is None:  # blocked
                if name not in self.disabled:
                    self.disabled.append(name)
                return False
            unknown = [
                impl.function.__name__
                for hookcaller in self.pm.get_hookcallers(plugin) or []
                if not hookcaller.has_spec()
                for impl in hookcaller.get_hookimpls()
                if impl.plugin is plugin and not impl.opts.get("optionalhook")
            ]
            if unknown:
                # A misspelt hook would otherwise never be called, silently.
                self.pm.unregister(plugin)
                self._record_error(
                    name, distribution, version,
                    pluggy.PluginValidationError(plugin, f"unknown hook(s): {', '.join(sorted(set(unknown)))}"),
                )
                return False
            self._distributions[name] = (distribution, version)
            if builtin:
                self._builtin.add(name)
            self._collect_adapters(name, distribution, version)
            return True

    def _collect_adapters(self, plugin_name, distribution, version):
        for impl in self.pm.hook.erp_adapters.get_hookimpls():
            if impl.plugin_name != plugin_name or impl.wrapper or impl.hookwrapper:
                continue
            try:
                result = impl.function()
                classes = list(result or [])
            except Exception as exc:
                self._record_error(plugin_name, distribution, version, exc)
                continue
            for cls in classes:
                problem = _adapter_class_problem(cls)
                if problem is None and cls.key in self.adapters:
                    problem = (
                        f"adapter key {cls.key!r} is already provided by plugin "
                        f"{self.adapter_plugin[cls.key]!r}"
                    )
                if problem:
                    self._record_error(plugin_name, distribution, version, ValueError(problem), with_traceback=False)
                    continue
                self.adapters[cls.key] = cls
                self.adapter_plugin[cls.key] = plugin_name

    def _record_error(self, name, distribution, version, exc, with_traceback=True):
        tb = "".join(traceback_module.format_exception(exc)) if with_traceback else ""
        error = LoadError(name, distribution, version, _one_line(exc), tb)
        self.load_errors.append(error)
        logger.error(
            "plugin %s (%s %s) failed to load: %s",
            name, distribution or "no distribution", version or "", error.error,
        )

    def _record_unavailable(self, name, distribution, version, exc):
        entry = Unavailable(name, distribution, version, _one_line(exc).removeprefix("PluginUnavailable: "))
        self.unavailable.append(entry)
        logger.warning("plugin %s is unavailable: %s", name, entry.reason)

    def unregister(self, name):
        """Remove a plugin and its adapters (tests)."""
        with self._lock:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            for key in [k for k, owner in self.adapter_plugin.items() if owner == name]:
                del self.adapters[key]
                del self.adapter_plugin[key]
            self._distributions.pop(name, None)
            self._builtin.discard(name)
            self.load_errors = [e for e in self.load_errors if e.name != name]
            self.unavailable = [u for u in self.unavailable if u.name != name]

    # --- inspection -----------------------------------------------------------------------------
    def get_adapter_class(self, key):
        return self.adapters.get(key)

    def adapter_choices(self):
        """[(key, label)] of every installed adapter, for forms."""
        return sorted(((k, getattr(c, "label", k) or k) for k, c in self.adapters.items()), key=lambda kv: kv[1].lower())

    def plugins_info(self):
        info = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            distribution, version = self._distributions.get(name, (None, None))
            info.append({
                "name": name,
                "version": version,
                "distribution": distribution,
                "adapters": sorted(k for k, owner in self.adapter_plugin.items() if owner == name),
                "hooks": sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or []),
                "builtin": name in self._builtin,
            })
        info.sort(key=lambda p: (not p["builtin"], p["name"]))
        return info

    # --- calling --------------------------------------------------------------------------------
    def notify(self, hook_name, **kwargs):
        """Call every implementation of an observer hook, each on its own.

        An exception in one implementation is logged with the plugin's name and never stops the
        others. Returns [(plugin name, exception)] of the failures. Raises only for a programming
        error of the caller (unknown hook, missing argument).
        """
        hook = getattr(self.pm.hook, hook_name, None)
        if hook is None or not hook.has_spec():
            raise ValueError(f"no hook named {hook_name!r}")
        missing = [a for a in hook.spec.argnames if a not in kwargs]
        if missing:
            raise TypeError(f"hook {hook_name} needs argument(s) {', '.join(missing)}")
        failures = []
        for impl in reversed(hook.get_hookimpls()):  # pluggy's own order
            if impl.wrapper or impl.hookwrapper:
                continue
            try:
                args = [kwargs[a] for a in impl.argnames]
                extra = {a: kwargs[a] for a in getattr(impl, "kwargnames", ()) if a in kwargs}
                impl.function(*args, **extra)
            except Exception as exc:
                failures.append((impl.plugin_name, exc))
                logger.error("plugin %s failed in hook %s: %s", impl.plugin_name, hook_name, _one_line(exc), exc_info=True)
        return failures


def _adapter_class_problem(cls):
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        return f"{cls!r} is not a subclass of integration.plugins.contract.Adapter"
    key = getattr(cls, "key", None)
    if not isinstance(key, str) or not ADAPTER_KEY_PATTERN.fullmatch(key):
        return f"adapter {cls.__qualname__} has no valid key (lowercase letters, digits, '_', '.', '-'): {key!r}"
    if not isinstance(getattr(cls, "label", None), str) or not cls.label:
        return f"adapter {key!r} has no label"
    actions = cls.actions
    if not actions or not set(actions) <= set(ACTIONS):
        return f"adapter {key!r} declares unknown actions {sorted(set(actions or ()) - set(ACTIONS))}"
    capabilities = getattr(cls, "capabilities", frozenset())
    if not set(capabilities) <= set(CAPABILITIES):
        return f"adapter {key!r} declares unknown capabilities {sorted(set(capabilities) - set(CAPABILITIES))}"
    if UPDATES in capabilities and cls.poll_updates is Adapter.poll_updates:
        return f"adapter {key!r} declares the capability {UPDATES!r} but does not implement poll_updates"
    if not all(isinstance(s, Setting) for s in cls.settings):
        return f"adapter {key!r}: every entry of settings must be a Setting"
    names = [s.name for s in cls.settings]
    if len(names) != len(set(names)):
        return f"adapter {key!r} declares a setting twice"
    return None


_registry = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded on first use."""
    global _registry
    registry = _registry
    if registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = PluginRegistry().load()
            registry = _registry
    return registry


def reset_registry() -> None:
    """Forget the loaded plugins; the next get_registry() loads them again (tests)."""
    global _registry
    with _registry_lock:
        _registry = None


def notify(hook_name: str, **kwargs) -> None:
    """Tell every plugin that implements an observer hook; a failing plugin never stops the others."""
    get_registry().notify(hook_name, **kwargs)
