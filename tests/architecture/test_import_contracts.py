"""The import contracts of pyproject.toml ([tool.importlinter], docs/architecture.md) hold, fail
on a planted violation, and the `integration` package has no import cycle."""
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.slow  # lint-imports and Python in subprocesses

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd):
    """Run the contracts on the tree at `cwd` (its pyproject.toml, its packages)."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"})


def contracts():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


PLANTED = [
    # (file, line added at the top, the contract that must break)
    ("integration/vtex/client.py", "from integration.models import Account", "vtex-client-http-only"),
    ("integration/vtex/errors.py", "from django.db import transaction", "vtex-client-http-only"),
    ("erp_plugins/webhook/adapter.py", "from integration.redaction import redact", "adapters-use-the-plugin-api"),
    ("integration/pipeline/routing.py", "from integration import tasks", "services-below-entry-points"),
    ("integration/operations/stores.py", "from integration.admin import bindings", "layers"),
    ("integration/models/feed.py", "from integration.pipeline import leases", "layers"),
    ("integration/plugins/events.py", "from integration.models import Account", "plugin-api-stands-alone"),
]


@pytest.mark.parametrize("path,line,contract", PLANTED, ids=[p[2] + ":" + p[0] for p in PLANTED])
def test_a_planted_violation_breaks_its_contract(tmp_path, path, line, contract):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "build")
    for package in ("integration", "erp_plugins"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0  # the copy is clean, and is the tree checked
    target = tmp_path / path
    target.write_text(line + "\n" + target.read_text())
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    name = next(c["name"] for c in contracts() if c["id"] == contract)
    broken = " ".join(result.stdout.split())  # the report wraps long names
    assert f"{name} BROKEN" in broken, result.stdout


def test_the_adapter_contract_forbids_every_part_of_the_hub_but_the_plugin_api():
    (adapters,) = [c for c in contracts() if c["id"] == "adapters-use-the-plugin-api"]
    graph = grimp.build_graph("integration")
    parts = graph.find_children("integration") | graph.find_children("integration.plugins")
    allowed = {"integration.plugins"}
    assert parts - allowed - set(adapters["forbidden_modules"]) == set(), "add new modules to the contract"


def import_cycles(graph):
    """Every import cycle of the graph, each as one path "a -> b -> … -> a"."""
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    # Tarjan's strongly connected components: any component of more than one module holds a cycle.
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(modules)))
    for module in modules:
        if module not in index:
            visit(module)
    paths = []
    for component in components:
        first = component[0]
        second = next(m for m in imports[first] if m in component)
        paths.append(" -> ".join((first,) + graph.find_shortest_chain(importer=second, imported=first)))
    return paths


def test_no_import_cycles_in_the_integration_package():
    cycles = import_cycles(grimp.build_graph("integration", exclude_type_checking_imports=True))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_a_planted_cycle_is_found_with_its_path(tmp_path):
    shutil.copytree(ROOT / "integration", tmp_path / "integration", ignore=shutil.ignore_patterns("__pycache__"))
    routing = tmp_path / "integration" / "pipeline" / "routing.py"
    routing.write_text("from integration.pipeline import inbox  # noqa\n" + routing.read_text())  # inbox imports routing
    script = ("import sys, grimp; sys.path.insert(0, sys.argv[1]); from test_import_contracts import import_cycles; "
              "print('\\n'.join(import_cycles(grimp.build_graph('integration', exclude_type_checking_imports=True))))")
    result = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "integration.pipeline.inbox -> integration.pipeline.routing -> integration.pipeline.inbox"
