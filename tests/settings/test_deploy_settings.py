"""Production settings: secure with only DEBUG=false, SECRET_KEY and ALLOWED_HOSTS set."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs manage.py in a subprocess

ROOT = Path(__file__).resolve().parents[2]
# HUB_ENV_FILE="": no dev env file, as on a server (a dev checkout has one with DEBUG=true).
PROD = {"PATH": os.environ["PATH"], "HUB_ENV_FILE": "", "DEBUG": "false", "ALLOWED_HOSTS": "hub.example.com",
        "SECRET_KEY": "a-long-random-production-secret-key-for-the-check-0123456789abcdef"}


def manage(*args, env):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_only_the_three_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PROD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PROD.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_a_tls_proxy_can_opt_out_of_what_it_already_does():
    env = dict(PROD, SECURE_SSL_REDIRECT="false", USE_X_FORWARDED_PROTO="true")
    result = manage("shell", "-c", "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE)", env=env)
    assert result.stdout.split()[-4:] == ["False", "('HTTP_X_FORWARDED_PROTO',", "'https')", "True"], result.stdout + result.stderr
