"""The "Installed plugins" admin page: every plugin (built-in or entry point), its version and
distribution, the adapters and hooks it provides, and the plugins that failed to load."""
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.template.response import TemplateResponse

from integration.models import AdapterBinding
from integration.plugins.installation import restart_pending
from integration.plugins.manager import DISABLE_ENV, get_registry


def plugins_view(model_admin, request):
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    registry = get_registry()
    in_use = dict(AdapterBinding.objects.order_by().values_list("adapter_key").annotate(n=Count("pk")))
    plugins = []
    for info in registry.plugins_info():
        adapters = []
        for key in info["adapters"]:
            cls = registry.get_adapter_class(key)
            adapters.append({
                "key": key, "label": cls.label, "actions": sorted(cls.actions),
                "settings": [f"{s.name}{' (secret)' if s.secret else ''}{' *' if s.required else ''}" for s in cls.settings],
                "bindings": in_use.get(key, 0),
            })
        plugins.append({**info, "adapter_details": adapters})
    missing = sorted(key for key in in_use if registry.get_adapter_class(key) is None)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Installed plugins",
        "plugins": plugins,
        "load_errors": registry.load_errors,
        "unavailable": registry.unavailable,
        "disabled": registry.disabled,
        "disable_env": DISABLE_ENV,
        "missing_adapters": [(key, in_use[key]) for key in missing],
        "show_tracebacks": request.user.is_superuser,
        # What this process loaded at start versus what is installed now (an install or uninstall since).
        "restart_pending": restart_pending(registry),
    }
    return TemplateResponse(request, "admin/integration/plugins.html", context)
