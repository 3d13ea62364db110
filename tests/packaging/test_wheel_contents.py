"""The hub's wheel holds the product only: the development tools of the checkout (the VTEX sandbox,
the benchmark) and the tests stay out of it."""
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {"integration", "erp_plugins"}
DEV_TOOLS = {"vtex_sandbox", "hub_bench", "tests"}


def test_setuptools_package_list_has_the_product_and_no_dev_tools():
    from setuptools.config.pyprojecttoml import read_configuration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "[tool.setuptools] support is beta" on older setuptools
        config = read_configuration(ROOT / "pyproject.toml", expand=True, ignore_option_errors=False)
    packages = config["tool"]["setuptools"]["packages"]
    tops = {name.split(".")[0] for name in packages}
    assert tops == PRODUCT, sorted(packages)
    assert {"integration.management.commands", "integration.migrations"} <= set(packages)


@pytest.mark.slow
def test_built_wheel_has_no_dev_tools(tmp_path):
    """`pip wheel . --no-deps` on a copy of the checkout (a build writes build/ and *.egg-info in its source)."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("integration", "erp_plugins", "vtex_sandbox", "hub_bench", "templates"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "manage.py"):
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == PRODUCT, sorted(tops)
    assert "integration/management/commands/runhub.py" in names
    assert not [n for n in names if n.split("/")[0] in DEV_TOOLS]
