"""`manage.py uninstall_plugin NAME…`: pip-uninstall plugin packages from the hub's environment."""
from django.core.management.base import BaseCommand, CommandError

from integration.models import AdapterBinding
from integration.plugins.installation import (
    RESTART_HINT,
    PluginCommandError,
    compare,
    distribution_of,
    plugins_snapshot,
    run_pip,
)


class Command(BaseCommand):
    help = ("Uninstall plugin packages, named by plugin (as `manage.py plugins` lists them) or by distribution, "
            "from the hub's own environment, and report what the running processes will lose at their restart.")

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="+", metavar="NAME", help="A plugin name or its distribution's name.")
        answers = parser.add_mutually_exclusive_group()
        answers.add_argument("--yes", action="store_true", help="Uninstall without asking.")
        answers.add_argument("--no-input", action="store_true", help="Never ask (same as --yes).")

    def handle(self, *args, names, yes, no_input, **options):
        try:
            before = plugins_snapshot()
        except PluginCommandError as exc:
            raise CommandError(str(exc)) from exc
        dists = []
        for name in names:
            dist, builtin = distribution_of(name, before)
            if builtin:
                raise CommandError(f"'{name}' is built into the hub and cannot be uninstalled; "
                                   "HUB_DISABLE_PLUGINS turns a plugin off.")
            if dist is None:
                raise CommandError(f"No installed plugin or package is called '{name}' (python manage.py plugins lists them).")
            dists.append(dist)
        dists = list(dict.fromkeys(dists))
        doomed = [p for p in before["plugins"] if p["distribution"] in dists]
        keys = sorted(key for p in doomed for key in p["adapters"])
        bound = AdapterBinding.objects.filter(adapter_key__in=keys).count() if keys else 0
        if bound:
            self.stdout.write(self.style.WARNING(
                f"{bound} binding(s) use the adapter(s) {', '.join(keys)}: their syncs are held until an adapter "
                "with that key is installed again."))
        if not (yes or no_input) and input(f"Uninstall {', '.join(dists)}? [y/N] ").strip().lower() not in {"y", "yes"}:
            raise CommandError("Nothing uninstalled.")
        ok, output = run_pip("uninstall", "--yes", *dists)
        if not ok:
            raise CommandError(f"pip could not uninstall {', '.join(dists)}:\n{output}")
        try:
            change = compare(before, plugins_snapshot())
        except PluginCommandError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Uninstalled {', '.join(dists)}."))
        for plugin in change.removed:
            self.stdout.write(f"  removed plugin '{plugin['name']}' (adapters: {', '.join(plugin['adapters']) or '-'})")
        self.stdout.write(RESTART_HINT)
