"""Settings, all read from the environment (docs/reference/settings.md lists every one).

A development checkout also has a git-ignored `.env` file, written by `make` with DEBUG=true and a
generated SECRET_KEY; its values fill in what the real environment does not set. Production has no
such file (or sets HUB_ENV_FILE to its own), so it still refuses to start without SECRET_KEY.
"""
import base64
import hashlib
import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from integration.env import env_bool, env_float, env_int, env_list, env_str, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent
TESTING = "pytest" in sys.modules or env_bool("HUB_TESTING", False)
# The test run never reads the developer's file: tests set what they need (subprocesses included).
ENV_FILE = None if TESTING else load_env_file(env_str("HUB_ENV_FILE", str(BASE_DIR / ".env")))
VAR_DIR = Path(env_str("HUB_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if (DEBUG or TESTING) else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Store tokens and adapter secrets are encrypted with Fernet keys kept apart from SECRET_KEY.
# The first key encrypts; every key decrypts, so a new key can be put first and old rows
# re-encrypted with `manage.py rotate_secrets` before the old key is dropped.
HUB_ENCRYPTION_KEYS = env_list("HUB_ENCRYPTION_KEYS")
if not HUB_ENCRYPTION_KEYS:
    # Without explicit keys, one is derived from SECRET_KEY; set HUB_ENCRYPTION_KEYS in production
    # so that SECRET_KEY can be rotated without losing the stored tokens.
    HUB_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(b"vtexhub-secrets:" + SECRET_KEY.encode()).digest()).decode()]

INSTALLED_APPS = [
    "integration.apps.HubAdminConfig",  # django.contrib.admin, with the hub's site (integration/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Before django_q: its `qcluster` command is the hub's (integration/management/commands/qcluster.py).
    "integration",
    "django_q",
    "ninja",  # the ERP API's Swagger UI, served from its static files
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "integration.urls"
WSGI_APPLICATION = "integration.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_default_sqlite = f"sqlite:///{VAR_DIR / 'hub.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL") or _default_sqlite, conn_max_age=0)}
# A worker keeps its connection across tasks and dispatch lots (opening one per task cost a few
# percent of the CPU per order); a connection that went bad is noticed before it is reused.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # IMMEDIATE makes a writer wait for the lock (up to `timeout`) instead of failing at once
    # with "database is locked"; WAL lets readers work while one writer writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that subprocesses under test share it; one per test run so that
    # two runs on one machine never write to the same file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-hub-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and cache -------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- The timeout chain: HTTP timeouts < cycle budget < lease TTL < q timeout < q retry, so that a
# stuck call ends before its task is given up on, and a task ends before another takes its work.
VTEX_CONNECT_TIMEOUT = env_float("VTEX_CONNECT_TIMEOUT", 3.05)
VTEX_READ_TIMEOUT = env_float("VTEX_READ_TIMEOUT", 20)
FEED_CYCLE_BUDGET = env_float("FEED_CYCLE_BUDGET", 50)
# The feed poller (one django-q2 task for every feed-mode store, FEED_CYCLE_BUDGET seconds a run,
# then handed to its successor): an empty feed is polled again after FEED_POLL_INTERVAL seconds;
# one store's turn retrieves full lots for at most FEED_TURN_BUDGET seconds before the other
# stores get theirs; FEED_POLLER_THREADS stores are polled at once by one poller; at most
# FEED_POLLERS pollers run at once over all clusters.
FEED_POLL_INTERVAL = env_float("FEED_POLL_INTERVAL", 3)
FEED_TURN_BUDGET = env_float("FEED_TURN_BUDGET", 10)
FEED_POLLER_THREADS = env_int("FEED_POLLER_THREADS", 4)
FEED_POLLERS = env_int("FEED_POLLERS", 1)
# The poller commits a store's handles once FEED_COMMIT_BATCH of them are stored (one commit for
# two full lots; 10 commits every lot), or when the oldest has waited FEED_COMMIT_DELAY seconds.
FEED_COMMIT_BATCH = env_int("FEED_COMMIT_BATCH", 20)
FEED_COMMIT_DELAY = env_float("FEED_COMMIT_DELAY", 5)
DISPATCH_BUDGET = env_float("DISPATCH_BUDGET", 50)
FEED_LEASE_TTL = env_int("FEED_LEASE_TTL", 120)
SYNC_CLAIM_TTL = env_int("SYNC_CLAIM_TTL", 300)
Q_TIMEOUT = env_int("Q_TIMEOUT", 360)
Q_RETRY = env_int("Q_RETRY", 420)

# Retries of our own work live in our rows (next_attempt_at), not in the broker.
SYNC_BACKOFF_SECONDS = [int(x) for x in env_list("SYNC_BACKOFF_SECONDS", ["60", "300", "900", "3600", "21600"])]
SYNC_MAX_ATTEMPTS = env_int("SYNC_MAX_ATTEMPTS", 8)
SYNC_BACKOFF_JITTER = env_float("SYNC_BACKOFF_JITTER", 0.1)
# A "send once ready-for-handling" sync (FromOrders routing) re-reads the order on this schedule
# until VTEX says ready-for-handling (the last delay repeats), and is held for the operator after
# READY_WAIT_MAX_CHECKS checks: by default about 7 days, longer than a bank slip stays payable.
READY_WAIT_SCHEDULE = [int(x) for x in env_list("READY_WAIT_SCHEDULE", ["60", "120", "300", "600", "1800", "3600"])]
READY_WAIT_MAX_CHECKS = env_int("READY_WAIT_MAX_CHECKS", 170)
START_HANDLING_MAX_ATTEMPTS = env_int("START_HANDLING_MAX_ATTEMPTS", 8)
DISPATCH_BATCH_SIZE = env_int("DISPATCH_BATCH_SIZE", 50)
# "Retry all matching this filter" releases that many syncs a minute, so an ERP back from an outage is not flooded.
RETRY_ALL_PER_MINUTE = env_int("RETRY_ALL_PER_MINUTE", 600)
DISPATCH_CONCURRENCY = env_int("DISPATCH_CONCURRENCY", 50)
# Every failed attempt keeps its request and response excerpts; of the successful ones, one in
# this many (1: all). Redacting and storing the excerpt of every success cost CPU and most of
# an order's bytes in the database.
SUCCESS_EXCERPT_EVERY = max(1, env_int("SUCCESS_EXCERPT_EVERY", 10))
VTEX_DEFAULT_RETRY_AFTER = env_int("VTEX_DEFAULT_RETRY_AFTER", 60)

Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "vtexhub"),
    # The work waits on HTTP, not on the CPU: more workers than cores.
    "workers": env_int("Q_WORKERS", 4),
    # A task never runs longer than its budget plus one in-flight order; timeout covers that,
    # and retry > timeout so the ORM broker never hands a running task to a second worker.
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    # Our rows are the retry queue; a failed task must not be re-run by the broker forever.
    "max_attempts": 1,
    "ack_failures": True,
    # A poller that missed slots while down needs one run, not one per missed minute.
    "catch_up": False,
    "save_limit": 250,
    "poll": 0.5,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if env_bool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True
# `manage.py qcluster` loads the tasks and the plugins and freezes the heap before it forks, so that
# the workers share them instead of each loading its own copy (see the command).
Q_CLUSTER_PRELOAD = env_bool("Q_CLUSTER_PRELOAD", True)

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["integration.formats"]  # short dates, so that the admin's lists fit 1400 px
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
LOGIN_URL = "admin:login"

# --- Security: secure by default, a TLS-terminating proxy may opt out of what it already does ----
_SECURE_DEFAULT = not (DEBUG or TESTING)  # the test server speaks plain HTTP
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _SECURE_DEFAULT)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _SECURE_DEFAULT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _SECURE_DEFAULT)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _SECURE_DEFAULT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _SECURE_DEFAULT)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS")
if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD:
    # Preload is a one-way commitment for the whole domain; it stays the operator's decision.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# --- Hub behaviour ----------------------------------------------------------------------------------
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL")
HUB_DEMO = env_bool("HUB_DEMO", True)
SANDBOX_URL = env_str("SANDBOX_URL", "http://127.0.0.1:8765")

# --- Logging: one line per event on stdout ---------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "integration.redaction.RedactingFilter"}},
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "line", "filters": ["redact"]},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # Django's own default sends runserver's request lines to a handler without the filter.
        "django.server": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "django-q": {"handlers": ["stdout"], "level": env_str("Q_LOG_LEVEL", "INFO").upper(), "propagate": False},
        "urllib3": {"level": "WARNING"},
    },
}

# Requests per minute per store and route, shared by every worker (0 or missing = no cap).
# Get order: VTEX documents 6,000 a minute per account; the others have no published number.
VTEX_RATE_LIMITS = {
    "get_order": env_int("VTEX_RATE_GET_ORDER", 6000),
    "feed_retrieve": env_int("VTEX_RATE_FEED", 3000),
    "feed_commit": env_int("VTEX_RATE_FEED", 3000),
    "start_handling": env_int("VTEX_RATE_START_HANDLING", 3000),
    "*": env_int("VTEX_RATE_OTHER", 600),
}
# Rate caps that learn (integration/pipeline/route_caps.py): each store's route starts at the cap
# above, is raised by VTEX_RATE_RAISE_PERCENT of it after every VTEX_RATE_RAISE_SECONDS in which
# the route used at least half its cap without a 429, up to the ceiling below, and is halved on a
# 429. An operator's pinned cap (the store's admin page) is never changed. VTEX_RATE_LEARN=false
# keeps the caps above (or the pinned ones) fixed.
VTEX_RATE_LEARN = env_bool("VTEX_RATE_LEARN", True)
VTEX_RATE_CEILINGS = {
    "get_order": env_int("VTEX_RATE_MAX_GET_ORDER", 6000),  # VTEX's published cap
    "feed_retrieve": env_int("VTEX_RATE_MAX_FEED", 6000),
    "feed_commit": env_int("VTEX_RATE_MAX_FEED", 6000),
    "start_handling": env_int("VTEX_RATE_MAX_START_HANDLING", 6000),
    "*": env_int("VTEX_RATE_MAX_OTHER", 1200),
}
VTEX_RATE_RAISE_PERCENT = env_int("VTEX_RATE_RAISE_PERCENT", 10)
VTEX_RATE_RAISE_SECONDS = env_int("VTEX_RATE_RAISE_SECONDS", 15)
# While a route is saturated (most calls waited for their slot) and VTEX answers without 429, its
# learned cap grows by this percent of itself every VTEX_RATE_FAST_RAISE_SECONDS ("slow start";
# 0: only the additive raise above). Not in the 15 minutes after a 429.
VTEX_RATE_FAST_RAISE_PERCENT = env_int("VTEX_RATE_FAST_RAISE_PERCENT", 100)
VTEX_RATE_FAST_RAISE_SECONDS = env_int("VTEX_RATE_FAST_RAISE_SECONDS", 3)

# /health/ reports a store unhealthy when its last feed cycle is older than this.
HEALTH_CYCLE_STALE_SECONDS = env_int("HEALTH_CYCLE_STALE_SECONDS", 300)
# /metrics: empty means open (scrape it from inside the network); set a token to require
# "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN")

# Retention (a daily job): finished syncs, their attempts, committed events and orders older
# than RETENTION_DAYS go; customer data inside stored order JSON and attempt excerpts goes after
# PII_RETENTION_DAYS even when the row stays. Failed and unresolved syncs stay until resolved.
RETENTION_DAYS = env_int("RETENTION_DAYS", 30)
PII_RETENTION_DAYS = env_int("PII_RETENTION_DAYS", 30)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000)

# Reconciliation (every RECONCILE_EVERY_MINUTES): orders in ready-for-handling created in the last
# RECONCILE_LOOKBACK_HOURS, and older than RECONCILE_MIN_AGE_SECONDS (VTEX's list lags ~4 min).
RECONCILE_LOOKBACK_HOURS = env_int("RECONCILE_LOOKBACK_HOURS", 72)
RECONCILE_MIN_AGE_SECONDS = env_int("RECONCILE_MIN_AGE_SECONDS", 900)
RECONCILE_EVERY_MINUTES = env_int("RECONCILE_EVERY_MINUTES", 30)

# Alerts: e-mail (Django's EMAIL_* settings) and/or a webhook; thresholds per condition.
ALERT_EMAILS = env_list("ALERT_EMAILS")
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL")
ALERT_CYCLE_FAILURES = env_int("ALERT_CYCLE_FAILURES", 3)
ALERT_PENDING_AGE_SECONDS = env_int("ALERT_PENDING_AGE_SECONDS", 3600)
ALERT_HOOK_SILENT_SECONDS = env_int("ALERT_HOOK_SILENT_SECONDS", 6 * 3600)
ALERT_FEED_BACKLOG_SECONDS = env_int("ALERT_FEED_BACKLOG_SECONDS", 24 * 3600)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "vtexhub@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# Circuit breaker per adapter binding: after this many transient failures in a row, hold the
# binding's syncs for BREAKER_OPEN_SECONDS, then let one probe through.
BREAKER_THRESHOLD = env_int("BREAKER_THRESHOLD", 5)
BREAKER_OPEN_SECONDS = env_int("BREAKER_OPEN_SECONDS", 60)
