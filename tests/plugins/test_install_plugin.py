"""`manage.py install_plugin` / `uninstall_plugin` with pip, in an environment of the test's own.

The hub runs here from a throwaway virtualenv whose interpreter sees the development virtualenv's
packages (Django, pip...) through a .pth file: pip, run by that interpreter, installs into the
throwaway environment, exactly as `install_plugin` installs into the hub's own in production, and
the development virtualenv is never touched.
"""
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "tests" / "plugin_packages"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory):
    """One throwaway hub environment for this module (each test leaves it as it found it)."""
    tmp_path = tmp_path_factory.mktemp("hub-env")
    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    [own_site] = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                                capture_output=True, text=True, check=True).stdout.split()
    dev_sites = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(own_site) / "hub_dev_packages.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in dev_sites))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="1", HUB_VAR_DIR=str(tmp_path / "var"))

    def manage(*args, stdin=None):
        return subprocess.run([str(python), str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=300)

    assert manage("migrate", "-v0").returncode == 0
    manage.site = Path(own_site)
    return manage


def test_install_reports_what_a_plugin_adds_and_uninstall_takes_it_back(hub_env, sample_wheels):
    result = hub_env("install_plugin", str(sample_wheels["hub-sample-adapter"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Added: plugin 'sample' from hub-sample-adapter 1.2.0" in result.stdout
    assert "adapters: sample_echo" in result.stdout and "hooks: erp_adapters, sync_succeeded" in result.stdout
    assert "Restart the hub's processes" in result.stdout
    assert list(hub_env.site.glob("hub_sample_adapter-1.2.0.dist-info"))  # in the hub's environment

    listing = hub_env("plugins")
    assert "sample  1.2.0  (hub-sample-adapter)" in listing.stdout

    result = hub_env("uninstall_plugin", "sample", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Uninstalled hub-sample-adapter." in result.stdout
    assert "removed plugin 'sample' (adapters: sample_echo)" in result.stdout
    assert not list(hub_env.site.glob("hub_sample_adapter*"))
    assert "sample" not in hub_env("plugins").stdout


def test_a_plugin_that_fails_to_load_is_reported_and_uninstalled_on_yes(hub_env, sample_wheels):
    result = hub_env("install_plugin", str(sample_wheels["hub-broken-adapter"]), "--yes")
    assert result.returncode != 0
    assert "Plugin 'broken' (hub-broken-adapter 0.0.1) failed to load: RuntimeError" in result.stderr
    assert "Uninstalled hub-broken-adapter." in result.stdout
    assert not list(hub_env.site.glob("hub_broken_adapter*"))


def test_a_plugin_that_fails_to_load_is_kept_on_no_input_and_the_prompt_defaults_to_keep(hub_env, sample_wheels):
    result = hub_env("install_plugin", str(sample_wheels["hub-broken-adapter"]), "--no-input")
    assert result.returncode != 0
    assert "it is still installed (python manage.py uninstall_plugin hub-broken-adapter removes it)" in result.stderr
    assert list(hub_env.site.glob("hub_broken_adapter-0.0.1.dist-info"))
    assert "broken (hub-broken-adapter 0.0.1)" in hub_env("plugins").stdout

    refused = hub_env("uninstall_plugin", "hub-broken-adapter", stdin="n\n")
    assert refused.returncode != 0 and "Nothing uninstalled." in refused.stderr
    assert list(hub_env.site.glob("hub_broken_adapter-0.0.1.dist-info"))
    accepted = hub_env("uninstall_plugin", "hub-broken-adapter", stdin="y\n")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert not list(hub_env.site.glob("hub_broken_adapter*"))


def test_built_ins_and_unknown_names_are_refused(hub_env):
    builtin = hub_env("uninstall_plugin", "erp_plugins.webhook", "--yes")
    assert builtin.returncode != 0 and "built into the hub" in builtin.stderr
    unknown = hub_env("uninstall_plugin", "no-such-plugin", "--yes")
    assert unknown.returncode != 0 and "No installed plugin or package is called 'no-such-plugin'" in unknown.stderr
    bad = hub_env("install_plugin", str(PACKAGES / "does-not-exist"))
    assert bad.returncode != 0 and "pip could not install" in bad.stderr


def test_the_plugins_page_shows_the_commands_and_a_pending_restart(admin_client, plugin_site, monkeypatch):
    """This process loaded its plugins before the sample packages were put on its path: a restart is pending."""
    from django.urls import reverse

    from integration.plugins.manager import reset_registry

    monkeypatch.syspath_prepend("/nonexistent")  # keep the registry loaded below free of the sample site
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(plugin_site)])
    reset_registry()
    try:
        from integration.plugins.manager import get_registry

        get_registry()  # loaded without the sample packages, as a process started before the install
        monkeypatch.syspath_prepend(str(plugin_site))  # then the packages are installed
        html = admin_client.get(reverse("admin:integration_plugins")).content.decode()
    finally:
        reset_registry()
    assert "python manage.py install_plugin SPEC" in html and "python manage.py uninstall_plugin NAME" in html
    assert 'id="restart-pending"' in html
    assert "<code>sample</code>: installed (hub-sample-adapter 1.2.0), loaded after a restart" in html
    assert "<code>broken</code>: installed (hub-broken-adapter 0.0.1), loaded after a restart" in html
