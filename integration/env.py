"""Tiny helpers that read settings from the environment (healthchecks style)."""
import os


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
