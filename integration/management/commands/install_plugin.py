"""`manage.py install_plugin SPEC…`: pip-install adapter plugins into the hub's environment and say what they add."""
from django.core.management.base import BaseCommand, CommandError

from integration.plugins.installation import (
    RESTART_HINT,
    PluginCommandError,
    compare,
    plugins_snapshot,
    run_pip,
)


class Command(BaseCommand):
    help = ("Install plugin packages (anything pip accepts: a name, name==version, a path, a URL) into the hub's "
            "own environment, load them in a fresh process and report the adapters and hooks they add, or why "
            "they failed to load.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("specs", nargs="+", metavar="SPEC", help="What pip should install.")
        parser.add_argument("-U", "--upgrade", action="store_true", help="Upgrade packages already installed.")
        parser.add_argument("-e", "--editable", action="store_true", help="Install local paths in editable mode.")
        answers = parser.add_mutually_exclusive_group()
        answers.add_argument("--yes", action="store_true", help="Uninstall a package that fails to load, without asking.")
        answers.add_argument("--no-input", action="store_true",
                             help="Never ask: keep a package that fails to load (and exit with an error).")

    def handle(self, *args, specs, upgrade, editable, yes, no_input, **options):
        try:
            before = plugins_snapshot()
            pip_args = ["install", *(["--upgrade"] if upgrade else [])]
            for spec in specs:
                pip_args += ["-e", spec] if editable else [spec]
            self.stdout.write(f"Installing {' '.join(specs)} with pip...")
            ok, output = run_pip(*pip_args)
            if not ok:
                raise CommandError(f"pip could not install {' '.join(specs)}:\n{output}")
            after = plugins_snapshot()
        except PluginCommandError as exc:
            raise CommandError(str(exc)) from exc
        change = compare(before, after)
        for plugin in change.added:
            self._describe("Added", plugin)
        for old_version, plugin in change.upgraded:
            self._describe(f"Upgraded (was {old_version})", plugin)
        if not (change.added or change.upgraded or change.new_errors):
            self.stdout.write(self.style.WARNING(
                "pip installed it, but no new plugin loads: a plugin package declares an entry point in the group "
                "'erp_plugins' (see docs/developers/packaging.md), or it was installed already."))
        if change.new_errors:
            self._failed(change.new_errors, yes, no_input)
        self.stdout.write(RESTART_HINT)

    def _describe(self, what, plugin):
        self.stdout.write(self.style.SUCCESS(
            f"{what}: plugin '{plugin['name']}' from {plugin['distribution']} {plugin['version']}"))
        self.stdout.write(f"  adapters: {', '.join(plugin['adapters']) or '-'}")
        self.stdout.write(f"  hooks: {', '.join(plugin['hooks']) or '-'}")

    def _failed(self, errors, yes, no_input):
        dists = sorted({e["distribution"] for e in errors if e["distribution"]})
        for error in errors:
            self.stderr.write(self.style.ERROR(
                f"Plugin '{error['name']}' ({error['distribution']} {error['version']}) failed to load: {error['error']}"))
        self.stderr.write("The hub keeps running without it; `python manage.py plugins --traceback-errors` shows the traceback.")
        if not dists:
            raise CommandError("A plugin failed to load.")
        if yes:
            remove = True
        elif no_input:
            remove = False
        else:
            remove = input(f"Uninstall {', '.join(dists)}? [y/N] ").strip().lower() in {"y", "yes"}
        if remove:
            ok, output = run_pip("uninstall", "--yes", *dists)
            if not ok:
                raise CommandError(f"pip could not uninstall {', '.join(dists)}:\n{output}")
            self.stdout.write(f"Uninstalled {', '.join(dists)}.")
            raise CommandError("The plugin failed to load and was uninstalled.")
        raise CommandError(f"The plugin failed to load; it is still installed (python manage.py uninstall_plugin "
                           f"{' '.join(dists)} removes it).")
