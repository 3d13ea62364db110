"""The "Operators" group: see everything, retry and resolve, never touch store credentials or adapter settings.

View permission on every model of this app and of django_q; change permission on syncs (all,
failed, held) and orders, which is what the admin's actions require. No add, change or delete
permission on stores (Account) or adapter bindings. Models added by later migrations get their
view permission from `integration.permissions.ensure_operators_group`, run after every migrate.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Operators"
VIEW_APPS = ("integration", "django_q")
CHANGE_MODELS = ("ordersync", "failedsync", "heldsync", "order")


def create_operators_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate): create them now.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # the historical app configs have none
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    view = Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_")
    change = Permission.objects.filter(content_type__app_label="integration",
                                       codename__in=[f"change_{m}" for m in CHANGE_MODELS])
    group.permissions.add(*view, *change)


def remove_operators_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_operators_group, remove_operators_group)]
