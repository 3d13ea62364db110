"""Every command in the docs works as written.

Extracts the shell blocks (```sh, ```bash, ```console, ```shell) of README.md and docs/**/*.md and
runs each `manage.py`, `make` and `python -m` command in them, in a development checkout's
conditions: the checkout's Python, a `var/` of the test's own and a development env file (DEBUG=true,
a generated SECRET_KEY) as `make` writes it, and nothing exported (no DEBUG, no SECRET_KEY). A command
that exits with an error or prints a traceback fails the test.

- `make run` is started, waited for (its banner), and stopped with Ctrl-C (SIGINT to its group).
- Commands that would not end (servers, `python -m` tools in LONG_MODULES) are checked with `--help`;
  `make` targets that would recurse into this suite or run for many minutes are checked with
  `make -n` (LONG_MAKE_TARGETS).
- A block that must not run carries `<!-- docs-test: skip (reason) -->` on the line before its fence.
"""
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"sh", "bash", "console", "shell"}
SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
SERVERS = {"runhub", "runserver", "qcluster", "vtex_sandbox", "loopback_erp"}  # manage.py commands that serve
LONG_MAKE_TARGETS = {"test", "scale-out", "bench"}  # `make -n`: recursion into pytest, or many minutes
LONG_MODULES = {"hub_bench", "vtex_sandbox", "vtex_sandbox.erp", "vtex_sandbox.erp.invoicer"}  # `python -m` tools that serve or run for minutes
PYTHONS = {"python", "python3", "python3.11", ".venv/bin/python", ".venv/bin/python3"}

pytestmark = pytest.mark.slow


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_blocks(path):
    """Yield (first line number, [lines]) of each shell block not marked to skip."""
    lines = path.read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(`{3,})\s*([\w-]*)", lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(2)
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence.group(1)):
            body.append(lines[i])
            i += 1
        i += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        if lang in SHELL_LANGS:
            if SKIP_MARK.search(previous):
                continue
            yield start + 2, body


def commands_of(body):
    """The command lines of a block: continuations joined, `$ ` prompts and comments dropped."""
    joined, pending = [], ""
    for line in body:
        line = re.sub(r"^\s*\$ ", "", line)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    carry = ""
    for line in joined:
        line = carry + line
        try:
            shlex.split(line, comments=True)
        except ValueError:  # a quoted string goes on over the next line (a JSON body, say)
            carry = line + "\n"
            continue
        carry = ""
        for part in re.split(r"\s*(?:&&|;)\s*", line):
            words = shlex.split(part, comments=True)
            if words:
                yield words


def runnable(words):
    """(environment assignments, the command) when it is one the test runs, else None."""
    assignments = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    if not words:
        return None
    if words[0] == "make":
        return assignments, words
    if words[0] in PYTHONS and len(words) > 1 and (words[1] == "manage.py" or words[1] == "-m"):
        return assignments, words
    return None


def documented_commands():
    """{command as written: [where]} for every runnable command of the docs."""
    found = {}
    for path in doc_files():
        for line_no, body in shell_blocks(path):
            for words in commands_of(body):
                if runnable(list(words)):
                    found.setdefault(shlex.join(words), []).append(f"{path.relative_to(ROOT)}:{line_no}")
    return found


DOCUMENTED = documented_commands()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkout_env(tmp_path_factory):
    """The environment of a fresh development checkout after `make run` wrote its env file."""
    home = tmp_path_factory.mktemp("docs-checkout")
    env_file = home / "dev.env"
    env_file.write_text(f"DEBUG=true\nSECRET_KEY={secrets.token_urlsafe(50)}\n")
    drop = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "HUB_TESTING",
            "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HUB_VAR_DIR=str(home / "var"), HUB_ENV_FILE=str(env_file), HUB_ADMIN_PASSWORD=secrets.token_urlsafe(16),
               PORT=str(free_port()), SANDBOX_PORT=str(free_port()), Q_WORKERS="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return env


def test_the_docs_have_commands_to_run():
    assert "make run" in DOCUMENTED and "make test" in DOCUMENTED
    assert any("manage.py plugins" in command for command in DOCUMENTED)


def test_the_extraction():
    body = ["$ make run   # starts", "DEBUG=1 python manage.py plugins --json \\", "   --strict", "pip install x",
            "cd /srv && .venv/bin/python manage.py migrate", "curl -d '{", '  "a": 1}\'', "make check"]
    commands = [runnable(list(w)) for w in commands_of(body)]
    assert commands == [({}, ["make", "run"]), ({"DEBUG": "1"}, ["python", "manage.py", "plugins", "--json", "--strict"]),
                        None, None, ({}, [".venv/bin/python", "manage.py", "migrate"]), None, ({}, ["make", "check"])]


@pytest.mark.parametrize("command", sorted(DOCUMENTED))
def test_documented_command_works_as_written(command, checkout_env):
    assignments, words = runnable(shlex.split(command))
    env = dict(checkout_env, **assignments)
    where = ", ".join(DOCUMENTED[command])
    if words[0] in PYTHONS:
        words = [sys.executable, *words[1:]]  # the checkout's Python (.venv/bin/python under `make test`)
    if words[:2] == ["make", "run"]:
        return run_make_run(words, env, where)
    if words[0] == "make" and LONG_MAKE_TARGETS & set(words[1:]):
        words = ["make", "-n", *words[1:]]
    elif len(words) > 2 and words[1] == "manage.py" and words[2] in SERVERS:
        words = [*words, "--help"]
    elif len(words) > 2 and words[1] == "-m" and words[2] in LONG_MODULES:
        words = [*words[:3], "--help"]
    result = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, f"`{command}` ({where}) failed:\n{output[-4000:]}"


def run_make_run(words, env, where):
    """Start `make run` as documented, wait for its banner, stop it as Ctrl-C does."""
    proc = subprocess.Popen(words, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Log in as 'admin'" in line:
                break
        assert proc.poll() is None, f"`{' '.join(words)}` ({where}) exited:\n{''.join(seen)[-4000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rest = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest = proc.communicate()[0]
    output = "".join(seen) + (rest or "")
    assert "VTEX order hub running: admin at" in output and "Traceback" not in output, output[-4000:]
    assert "Stopped." in output, output[-4000:]
