"""Every hook, setting, management command and admin action has its entry in docs/reference/
(datasette's documentation test does the same for its plugin hooks), and the README's links resolve."""
import ast
import re
from pathlib import Path

import pytest
from django.contrib import admin

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
ENV_CALL = re.compile(r"""\benv_(?:str|bool|int|float|list)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
ENVIRON_READ = re.compile(r"""os\.(?:environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\]""")


def reference_text():
    return "\n".join(p.read_text("utf-8") for p in sorted(REFERENCE.glob("*.md")))


def documented(name, text):
    """`name` appears as code (`NAME`, or `NAME` inside a longer code span such as `manage.py NAME --x`)."""
    return re.search(r"`[^`\n]*(?<![\w-])" + re.escape(name) + r"(?![\w-])[^`\n]*`", text) is not None


def hookspecs():
    """{hook name: [parameter names]} of every @hookspec in integration/plugins/hookspecs.py."""
    from integration.plugins import hookspecs as module

    tree = ast.parse(Path(module.__file__).read_text("utf-8"))
    return {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list)}


def hookspec_names():
    return sorted(hookspecs())


def setting_names():
    """Every variable the settings read from the environment, and every one read through the env helpers."""
    names = set()
    for path in (ROOT / "integration").rglob("*.py"):
        if "benchmark" in path.parts or "migrations" in path.parts:
            continue  # the benchmark's knobs are documented with the benchmark
        text = path.read_text("utf-8")
        names.update(ENV_CALL.findall(text))
        if path.name == "settings.py" or "commands" in path.parts:
            names.update(a or b for a, b in ENVIRON_READ.findall(text))
    from integration.plugins.manager import DISABLE_ENV

    names.add(DISABLE_ENV)
    return sorted(names)


def command_names():
    return sorted(p.stem for p in (ROOT / "integration" / "management" / "commands").glob("*.py") if p.stem != "__init__")


def admin_action_names():
    names = set()
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "integration":
            continue
        for _func, name, _description in model_admin._get_base_actions():
            names.add(name)
    names.discard("delete_selected")  # Django's own
    return sorted(names)


def test_the_collectors_find_what_they_should():
    assert {"erp_adapters", "sync_succeeded", "alert_changed"} <= set(hookspec_names())
    assert {"SECRET_KEY", "DATABASE_URL", "HUB_ENV_FILE", "HUB_DISABLE_PLUGINS", "FEED_CLUSTER", "PORT"} <= set(setting_names())
    assert {"runhub", "plugins", "install_plugin", "uninstall_plugin"} <= set(command_names())
    assert {"retry_now", "check_connection", "retry_start_handling"} <= set(admin_action_names())


def test_documented_matches_code_spans_only():
    assert documented("DEBUG", "| `DEBUG` | x |")
    assert documented("plugins", "`manage.py plugins [--json]`")
    assert not documented("DEBUG", "DEBUG in prose")
    assert not documented("plugins", "`manage.py install_plugins`")
    assert not documented("SYNC_MAX", "`SYNC_MAX_ATTEMPTS`")


@pytest.mark.parametrize("kind, names", [
    ("plugin hook", hookspec_names),
    ("setting", setting_names),
    ("management command", command_names),
    ("admin action", admin_action_names),
], ids=["hooks", "settings", "commands", "admin-actions"])
def test_everything_has_a_reference_entry(kind, names):
    text = reference_text()
    missing = [name for name in names() if not documented(name, text)]
    assert not missing, f"{kind}(s) without an entry in docs/reference/*.md: {', '.join(missing)}"


def test_every_hook_has_a_heading_with_its_signature():
    text = (REFERENCE / "hooks.md").read_text("utf-8")
    for name, params in hookspecs().items():
        heading = f"## `{name}({', '.join(params)})`"
        assert heading in text, f"docs/reference/hooks.md has no heading {heading}"


def test_the_readme_links_resolve_and_it_stays_short():
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
