import sys

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate

from integration.permissions import ensure_operators_group
from integration.schedules import ensure_schedules, start_feed_poller_on_worker_spawn


class HubAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` with the hub's own site as `admin.site` (named in INSTALLED_APPS).

    Here rather than beside the site: INSTALLED_APPS imports this module before the models exist. The
    site lives outside the integration.admin package so that building it never imports (and
    registers) the hub's ModelAdmins while `admin.site` is still being set up.
    """

    default = False  # IntegrationConfig stays this module's app config
    default_site = "integration.admin_site.HubAdminSite"


class IntegrationConfig(AppConfig):
    name = "integration"
    verbose_name = "VTEX order hub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(_after_migrate, sender=self)
        _redact_server_logs()
        # django_q.signals imports django_q's models: connected here, once the apps are loaded.
        from django_q.signals import post_spawn

        post_spawn.connect(start_feed_poller_on_worker_spawn, dispatch_uid="vtexhub-feed-poller-at-start")
        if sys.argv[1:2] == ["qcluster"]:
            _load_before_the_workers_fork()


def _load_before_the_workers_fork():
    """In the qcluster's main process, before django-q2 forks its sentinel and workers: the
    plugins (their imports and the scan of every installed distribution's entry points) and the
    task modules, loaded once here, are inherited by every worker, a recycled one included.
    Loaded by each worker on its first task, they were about 5 % of the hub's CPU in a
    2,000-order burst. A plugin that fails to load is recorded by the registry as ever."""
    from integration import tasks  # noqa: F401  (django-q2 imports each task's module by name in the worker)
    from integration.plugins.manager import get_registry

    get_registry()


def _redact_server_logs():
    """gunicorn's access and error lines name the requested URL, and a hook URL holds its secret.
    gunicorn configures those loggers' handlers itself (an access log file, say), so the filter
    goes on the loggers, not on handlers in LOGGING (which would replace gunicorn's)."""
    import logging

    from integration.redaction import RedactingFilter

    for name in ("gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def _after_migrate(sender, **kwargs):
    ensure_schedules()
    ensure_operators_group()
