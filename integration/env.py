"""Tiny helpers that read settings from the environment (healthchecks style), and the dev env file."""
import os
from pathlib import Path

from dotenv import load_dotenv


def load_env_file(path):
    """Read a dotenv file into os.environ without overriding what the environment already sets.

    Returns the path read, or None when `path` is empty or names no file (production).
    """
    if not path or not Path(path).is_file():
        return None
    load_dotenv(path, override=False)
    return Path(path)


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_float(name, default):
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def env_list(name, default=()):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]
