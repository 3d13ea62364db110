"""`manage.py plugins`: the installed plugins, their versions, adapters and hooks, and load errors."""
import json

from django.core.management.base import BaseCommand, CommandError

from integration.plugins.manager import DISABLE_ENV, get_registry


class Command(BaseCommand):
    help = "List installed plugins (built-in and entry point 'erp_plugins') and plugins that failed to load."
    requires_system_checks = []  # listing plugins must work even when something else is misconfigured

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument("--traceback-errors", action="store_true", help="Show the traceback of each load error.")
        parser.add_argument("--strict", action="store_true", help="Exit with an error when a plugin failed to load.")

    def handle(self, *args, **options):
        registry = get_registry()
        plugins = registry.plugins_info()
        errors = registry.load_errors
        if options["json"]:
            data = {
                "plugins": plugins,
                "load_errors": [
                    {"name": e.name, "distribution": e.distribution, "version": e.version, "error": e.error,
                     "traceback": e.traceback}
                    for e in errors
                ],
                "disabled": list(registry.disabled),
                "unavailable": [
                    {"name": u.name, "distribution": u.distribution, "version": u.version, "reason": u.reason}
                    for u in registry.unavailable
                ],
                "adapters": {key: registry.adapter_plugin[key] for key in sorted(registry.adapters)},
            }
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self._write_text(registry, plugins, errors, options["traceback_errors"])
        if options["strict"] and errors:
            raise CommandError(f"{len(errors)} plugin(s) failed to load.")

    def _write_text(self, registry, plugins, errors, show_traceback):
        self.stdout.write(f"Plugins ({len(plugins)} loaded, {len(errors)} load error(s)):")
        for plugin in plugins:
            origin = "built-in" if plugin["builtin"] else (plugin["distribution"] or "registered in code")
            version = plugin["version"] or "-"
            self.stdout.write(f"  {plugin['name']}  {version}  ({origin})")
            self.stdout.write(f"    adapters: {', '.join(plugin['adapters']) or '-'}")
            self.stdout.write(f"    hooks: {', '.join(plugin['hooks']) or '-'}")
        if registry.unavailable:
            self.stdout.write("Unavailable (an optional dependency is not installed):")
            for entry in registry.unavailable:
                self.stdout.write(self.style.WARNING(f"  {entry.name}  {entry.version or '-'}: {entry.reason}"))
        if registry.disabled:
            self.stdout.write(f"Disabled by {DISABLE_ENV}: {', '.join(registry.disabled)}")
        if errors:
            self.stdout.write("Load errors:")
            for error in errors:
                source = " ".join(p for p in (error.distribution, error.version) if p) or "no distribution"
                self.stdout.write(self.style.ERROR(f"  {error.name} ({source}): {error.error}"))
                if show_traceback and error.traceback:
                    for line in error.traceback.rstrip().splitlines():
                        self.stdout.write(f"      {line}")
