"""Adapter bindings: a store × an installed adapter, configured with the adapter's own settings form.

The settings form is built from the adapter's `Setting`s (types, defaults, help, choices); secret
settings are write-only (a blank field keeps the stored value) and everything is validated by the
adapter through `AdapterBinding.apply_settings`, with its message under the field it is about.
Users who may not change bindings (operators) never see the settings at all.
"""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from integration.operations import bindings as binding_ops
from integration.operations import results
from integration.crypto import SecretDecryptionError
from integration.admin.display import LEVELS, truncated
from integration.admin.forms import binding_form_for, setting_field_names
from integration.admin.plugins_page import plugins_view
from integration.admin.updates import ErpTokenInline
from integration.models import Account, AdapterBinding
from integration.plugins.manager import get_registry

BREAKER_COLOURS = {binding_ops.CLOSED: "#1a7f37", binding_ops.OPEN: "#b00020", binding_ops.HALF_OPEN: "#9a6700"}


def can_operate(request, model):
    """The day-to-day actions (check, pause, resume, reset; for stores also test, run a cycle,
    reconcile) are for whoever may change the model, and for the Operators group, who may change
    orders and syncs: an operator pauses a store or an adapter, but never sees its credentials."""
    user = request.user
    return user.has_perm(f"integration.change_{model}") or user.has_perm("integration.change_order")


def report(modeladmin, request, result):
    modeladmin.message_user(request, result.message, LEVELS[result.level])


def breaker_badge(binding):
    state = binding_ops.breaker_state(binding)
    text = state
    if state == binding_ops.OPEN:
        text += f" until {binding.breaker_open_until:%Y-%m-%d %H:%M:%S}"
    if binding.breaker_failures:
        text += f" ({binding.breaker_failures} failure{'s' if binding.breaker_failures != 1 else ''} in a row)"
    return format_html('<span class="breaker breaker-{}" style="color:{}">{}</span>', state.replace("-", ""),
                       BREAKER_COLOURS[state], text)


@admin.register(AdapterBinding)
class AdapterBindingAdmin(admin.ModelAdmin):
    list_display = ["binding_name", "adapter_key", "enabled", "gates_start_handling", "breaker"]
    list_filter = ["enabled", "adapter_key", "account"]
    list_select_related = ["account"]
    search_fields = ["name", "adapter_key", "account__name"]
    @admin.display(description="adapter binding", ordering="name")
    def binding_name(self, obj):
        return truncated(str(obj), "22em")

    actions = ["check_connection", "pause_bindings", "resume_bindings", "reset_breakers"]

    def get_inlines(self, request, obj):
        # The binding's ERP API tokens, read-only (issued and revoked on their own page). Shown, not
        # posted: a read-only inline on POST would only demand a management form of every client.
        return [ErpTokenInline] if obj is not None and request.method == "GET" else []
    add_form_template = "admin/integration/adapterbinding/change_form.html"
    change_form_template = "admin/integration/adapterbinding/change_form.html"

    # --- the form: the adapter's own settings -----------------------------------------------------
    def _adapter_cls(self, request, obj):
        key = obj.adapter_key if obj is not None else (request.POST.get("adapter_key") or request.GET.get("adapter_key"))
        return get_registry().get_adapter_class(key) if key else None

    def _shows_settings(self, request, obj):
        # Adapter settings (endpoints, paths) are for those who may change them; operators only view.
        return self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)

    def _stored_secrets(self, obj):
        if obj is None or not obj.pk:
            return set()
        try:
            return set((obj.secret_settings or {}).keys())
        except SecretDecryptionError:  # the page still opens, to enter them again
            return set()

    def _secrets_unreadable(self, obj):
        if obj is None or not obj.pk or not obj.secret_settings_ciphertext:
            return False
        try:
            obj.secret_settings
        except SecretDecryptionError:
            return True
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = binding_form_for(self._adapter_cls(request, obj), with_settings=self._shows_settings(request, obj),
                                          stored_secrets=self._stored_secrets(obj), secrets_unreadable=self._secrets_unreadable(obj))
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        general = ["account", "adapter_key", "name", "enabled", "gates_start_handling", "actions"]
        fieldsets = [(None, {"fields": general})]
        adapter_cls = self._adapter_cls(request, obj)
        if obj is not None and adapter_cls is None:
            fieldsets.append(("Settings", {"fields": [], "description":
                              f"The adapter '{obj.adapter_key}' is not installed: its syncs are held until it is. "
                              "See Installed plugins."}))
        elif adapter_cls is not None and self._shows_settings(request, obj):
            names = setting_field_names(adapter_cls, self._stored_secrets(obj))
            fieldsets.append((f"Settings of the {adapter_cls.label} adapter", {"fields": names}))
        if obj is not None:
            fieldsets.append(("Circuit breaker", {"fields": ["breaker", "breaker_failures", "breaker_open_until"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = ["breaker", "breaker_failures", "breaker_open_until"]
        if obj is not None:
            fields += ["account", "adapter_key"]  # settings belong to one adapter; make a new binding instead
        return fields

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "GET" and self._adapter_cls(request, None) is None:
            return self.choose_adapter_view(request)
        return super().add_view(request, form_url, extra_context)

    def choose_adapter_view(self, request):
        """Step one of adding a binding: which adapter (its settings form depends on it)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        registry = get_registry()
        account = request.GET.get("account", "")
        adapters = []
        for key, label in registry.adapter_choices():
            query = {"adapter_key": key, **({"account": account} if account.isdigit() else {})}
            cls = registry.get_adapter_class(key)
            adapters.append({"key": key, "label": label, "actions": sorted(cls.actions),
                             "plugin": registry.adapter_plugin.get(key, ""),
                             "url": reverse("admin:integration_adapterbinding_add") + "?" + urlencode(query)})
        store = Account.objects.filter(pk=account).first() if account.isdigit() else None
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Add an adapter binding: choose the adapter",
                   "adapters": adapters, "store": store, "plugins_url": reverse("admin:integration_plugins")}
        return TemplateResponse(request, "admin/integration/adapterbinding/choose_adapter.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The form posts back to its own address, ?adapter_key=... included: the settings fields
        # are built from it.
        context["adapter_cls"] = self._adapter_cls(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_operate_permission(self, request):
        return can_operate(request, "adapterbinding")

    # --- list --------------------------------------------------------------------------------------
    @admin.display(description="circuit breaker")
    def breaker(self, obj):
        return breaker_badge(obj)

    # --- actions -----------------------------------------------------------------------------------
    @admin.action(description="Check connection", permissions=["operate"])
    def check_connection(self, request, queryset):
        for binding in queryset.select_related("account"):
            report(self, request, binding_ops.check_binding_connection(binding))

    @admin.action(description="Pause (hold its syncs)", permissions=["operate"])
    def pause_bindings(self, request, queryset):
        for binding in queryset.select_related("account"):
            report(self, request, binding_ops.pause_binding(binding))

    @admin.action(description="Resume", permissions=["operate"])
    def resume_bindings(self, request, queryset):
        for binding in queryset.select_related("account"):
            report(self, request, binding_ops.resume_binding(binding))

    @admin.action(description="Reset circuit breaker", permissions=["operate"])
    def reset_breakers(self, request, queryset):
        for binding in queryset.select_related("account"):
            report(self, request, binding_ops.reset_breaker(binding))

    # --- the installed plugins page ------------------------------------------------------------------
    def get_urls(self):
        return [
            path("plugins/", self.admin_site.admin_view(self.plugins_view), name="integration_plugins"),
        ] + super().get_urls()

    def plugins_view(self, request):
        return plugins_view(self, request)

    def response_add(self, request, obj, post_url_continue=None):
        # Back to the store the binding was added from, when there is one.
        if "_continue" not in request.POST and "_addanother" not in request.POST and request.GET.get("account"):
            self.message_user(request, f"Adapter binding “{obj}” added.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:integration_account_change", args=[obj.account_id]))
        return super().response_add(request, obj, post_url_continue)
