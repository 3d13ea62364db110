"""Every hook spec must be exercised by at least one test (datasette does the same)."""
import ast
from pathlib import Path

import integration.plugins.hookspecs as hookspecs
from integration.plugins.manager import PluginRegistry

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve()


def hookspec_names():
    tree = ast.parse(Path(hookspecs.__file__).read_text("utf-8"))
    return sorted(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list)
    )


def test_collected_names_match_the_registered_specs():
    names = hookspec_names()
    assert names, "no hookspec found in hookspecs.py"
    registered = {name for name in dir(PluginRegistry().pm.hook) if not name.startswith("_")}
    assert set(names) == registered


def test_every_hookspec_has_a_test():
    test_files = [
        path for folder in ("tests", "erp_plugins") for path in (ROOT / folder).rglob("test_*.py")
        if path.resolve() != THIS_FILE
    ]
    text = "\n".join(path.read_text("utf-8") for path in test_files)
    untested = [name for name in hookspec_names() if name not in text]
    assert not untested, f"hook specs with no test: {untested}"
