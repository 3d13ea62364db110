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


def _after_migrate(sender, **kwargs):
    ensure_schedules()
    ensure_operators_group()
