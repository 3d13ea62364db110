"""The sample plugin packages (tests/plugin_packages/) installed for these tests only.

They are pip-installed once per test run into a temporary `--target` directory, which is put on
sys.path (and PYTHONPATH, for subprocesses) during each test of this directory: importlib.metadata
finds their dist-info there, so entry-point loading is proven exactly as for a package in the
virtualenv, while the virtualenv that `make run` uses never sees them (one is broken on purpose).
"""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "plugin_packages"
SAMPLE = PACKAGES / "hub-sample-adapter"
BROKEN = PACKAGES / "hub-broken-adapter"


def pip_install_target(target, *specs):
    """Install `specs` into `target` (not the running environment); fail the test with pip's output."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(target), *map(str, specs)],
        capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"pip install --target failed:\n{result.stdout}\n{result.stderr}")
    return target


@pytest.fixture(scope="session")
def sample_wheels(tmp_path_factory):
    """The sample packages built once per run: {distribution name: wheel file}."""
    out = tmp_path_factory.mktemp("plugin-wheels")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                             "--wheel-dir", str(out), str(SAMPLE), str(BROKEN)], capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"pip wheel failed:\n{result.stdout}\n{result.stderr}")
    return {"hub-sample-adapter": next(out.glob("hub_sample_adapter-*.whl")),
            "hub-broken-adapter": next(out.glob("hub_broken_adapter-*.whl"))}


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory, sample_wheels):
    """A directory holding both sample packages, installed the way pip installs any plugin."""
    return pip_install_target(tmp_path_factory.mktemp("plugin-site"), *sample_wheels.values())


@pytest.fixture(autouse=True)
def sample_plugins_on_path(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))  # also invalidates importlib's caches
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")])))
    yield plugin_site
    importlib.invalidate_caches()
