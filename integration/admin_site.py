"""The admin site of the hub: its name on every page and the login, and one section in operator order.

The index and the sidebar list the hub's pages in the order an operator works through them (the
dashboard and the plugins page among them, although they are not models), and django-q2's task
tables last, in a section named for what they are. Permissions are Django's: a page is listed only
to users who may open it.
"""
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

HUB_APP = "integration"
QUEUE_APP = "django_q"
QUEUE_SECTION = "Task queue (django-q2 internals)"

# object_name (lowercase) of every entry of the hub's section, in operator order; the pages that are
# not models are added by `_hub_pages`. Anything not listed follows, alphabetically.
OPERATOR_ORDER = ["dashboard", "failedsync", "heldsync", "failedupdate", "order", "ordersync", "vtexupdate", "account",
                  "adapterbinding", "erptoken",
                  "plugins", "alert", "feedevent"]


class HubAdminSite(admin.AdminSite):
    site_header = "VTEX order hub"
    site_title = "VTEX order hub"
    index_title = "Operations"
    site_url = None  # "/" is this admin: no "View site" link

    def get_app_list(self, request, app_label=None):
        app_dict = self._build_app_dict(request, app_label)
        hub = app_dict.get(HUB_APP)
        if hub is not None:
            hub["models"].extend(self._hub_pages(request))
            rank = {name: i for i, name in enumerate(OPERATOR_ORDER)}
            hub["models"].sort(key=lambda m: (rank.get(m["object_name"].lower(), len(rank)), m["name"]))
        queue = app_dict.get(QUEUE_APP)
        if queue is not None:
            queue["name"] = QUEUE_SECTION
            queue["models"].sort(key=lambda m: m["name"])

        def section_order(app):
            return {HUB_APP: 0, QUEUE_APP: 2}.get(app["app_label"], 1), app["name"].lower()

        apps = sorted(app_dict.values(), key=section_order)
        for app in apps:
            if app["app_label"] not in (HUB_APP, QUEUE_APP):
                app["models"].sort(key=lambda m: m["name"])
        return apps

    def _hub_pages(self, request):
        """The dashboard and the plugins page, as entries of the hub's section, for those who may open them."""
        from integration.models import Account, AdapterBinding

        pages = []
        for object_name, label, url_name, model in (
            ("Dashboard", "Health dashboard", "admin:integration_dashboard", Account),
            ("Plugins", "Installed plugins", "admin:integration_plugins", AdapterBinding),
        ):
            model_admin = self._registry.get(model)
            if model_admin is None or not model_admin.has_view_or_change_permission(request):
                continue
            try:
                url = reverse(url_name, current_app=self.name)
            except NoReverseMatch:
                continue
            pages.append({"name": label, "object_name": object_name, "perms": {"view": True},
                          "admin_url": url, "add_url": None, "view_only": True, "model": None})
        return pages

