from django.apps import AppConfig
from django.db.models.signals import post_migrate

from integration.permissions import ensure_operators_group
from integration.schedules import ensure_schedules


class IntegrationConfig(AppConfig):
    name = "integration"
    verbose_name = "VTEX order hub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(_after_migrate, sender=self)
        _redact_server_logs()


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
