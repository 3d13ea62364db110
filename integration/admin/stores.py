"""Stores: their health at a glance, their feed configuration, and what an operator does to them.

The list's health figures are SQL aggregates, never a query per store: the page's rows come with
their annotations (events in 24 h, open alerts; `operations.queries.annotate_health`) in one query,
and the sync figures of every store on the page in one grouped query (`attach_sync_figures`).
Every action is one call per store to a function of `integration.operations.stores`
and one message per store.
"""
import json

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from integration.demo import DEMO_APP_TOKEN
from integration import expressions
from integration.operations import feed_configuration
from integration.operations import queries
from integration.operations import results
from integration.operations import stores as store_ops
from integration.admin.display import truncated
from integration.admin.bindings import LEVELS, breaker_badge, can_operate
from integration.admin.dashboard import dashboard_view
from integration.admin.forms import AccountForm, ExpressionTestForm, FeedConfigurationForm
from integration.admin.hook_actions import last_hook, register_hook, remove_hook
from integration.admin.rate_caps import RouteCapInline
from integration.admin.updates import attach_update_figures, refusals_url, updates_to_vtex
from integration.models import Account, AdapterBinding, FeedConfiguration, FilterType, RoutingRule


def when(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


class FeedConfigurationInline(admin.StackedInline):
    model = FeedConfiguration
    form = FeedConfigurationForm
    can_delete = False
    extra = 0
    fields = ["filter_type", "statuses", "other_statuses", "confirm_unknown_statuses", "expression", "disable_single_fire",
              "visibility_timeout", "retention", "last_pushed_at"]
    readonly_fields = ["last_pushed_at"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            fields = [f for f in fields if f not in ("other_statuses", "confirm_unknown_statuses")]  # form-only fields
        return fields


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0


class AdapterBindingInline(admin.TabularInline):
    """A summary: bindings are added and configured on their own page (their settings form is the adapter's)."""

    model = AdapterBinding
    extra = 0
    fields = ["adapter_key", "name", "enabled", "gates_start_handling", "breaker"]
    readonly_fields = ["adapter_key", "breaker"]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")  # str(binding) names its store

    @admin.display(description="circuit breaker")
    def breaker(self, obj):
        return breaker_badge(obj) if obj.pk else "—"


class StoreChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # The page's sync figures: one grouped query for every store on the page.
        queries.attach_sync_figures(self.result_list)
        attach_update_figures(self.result_list)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountForm
    list_display = ["store_name", "state", "last_cycle", "events_24h", "syncs_waiting", updates_to_vtex, "oldest_pending",
                    "vtex_backlog", last_hook, "alerts"]
    actions = [register_hook, remove_hook, "check_connection", "run_feed_cycle", "pause_stores", "resume_stores",
               "reconcile_stores", "create_test_orders"]
    list_filter = ["active", "paused", "intake_mode"]
    search_fields = ["name", "account_name", "app_key"]
    inlines = [FeedConfigurationInline, RoutingRuleInline, AdapterBindingInline, RouteCapInline]
    readonly_fields = ["last_cycle_at", "last_cycle_ok", "last_cycle_error", "last_cycle_summary", "last_hook_at"]
    change_form_template = "admin/integration/account/change_form.html"
    change_list_template = "admin/integration/account/change_list.html"

    def get_queryset(self, request):
        return queries.annotate_health(super().get_queryset(request))

    def get_inlines(self, request, obj):
        # A new store has no rate caps yet: a route's row appears the first time the hub calls it.
        return self.inlines if obj is not None else [i for i in self.inlines if i is not RouteCapInline]

    def get_changelist(self, request, **kwargs):
        return StoreChangeList

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        # The token is write-only: a user who may not change stores gets no field for it at all
        # (a read-only field would render the decrypted value).
        if not self.has_change_permission(request, obj):
            fields = [f for f in fields if f != "app_token"]
        return fields

    def has_operate_permission(self, request):
        return can_operate(request, "account")

    # --- list columns ------------------------------------------------------------------------------
    @admin.display(description="state")
    def state(self, obj):
        if not obj.active:
            return mark_safe('<span style="color:#6e7781">inactive</span>')
        if obj.paused:
            return mark_safe('<strong style="color:#9a6700" title="Receives and stores events; sends nothing">paused</strong>')
        return format_html('<span style="color:#1a7f37">running</span> <span class="quiet">({})</span>', obj.intake_mode)

    @admin.display(description="last feed cycle", ordering="last_cycle_at")
    def last_cycle(self, obj):
        if obj.last_cycle_at is None:
            return "never"
        if obj.last_cycle_ok:
            s = obj.last_cycle_summary or {}
            return format_html("{} ok: {} new, {} committed", when(obj.last_cycle_at), s.get("new", 0), s.get("committed", 0))
        return format_html('<span style="color:#b00">{} error: {}</span>', when(obj.last_cycle_at), obj.last_cycle_error[:200])

    @admin.display(description="events 24 h", ordering="events_24h")
    def events_24h(self, obj):
        return obj.events_24h

    @admin.display(description="syncs pending / held / failed")
    def syncs_waiting(self, obj):
        links = [
            (reverse("admin:integration_ordersync_changelist") + "?" + urlencode({"store": obj.pk, "status__exact": "pending"}),
             "pending", obj.pending_syncs, "#0969da"),
            (reverse("admin:integration_heldsync_changelist") + "?" + urlencode({"store": obj.pk}), "held", obj.held_syncs, "#9a6700"),
            (reverse("admin:integration_failedsync_changelist") + "?" + urlencode({"store": obj.pk}), "failed", obj.failed_syncs, "#b00020"),
        ]
        return format_html_join(
            " / ", '<a href="{}" class="syncs-{}" style="color:{}">{}</a>',
            ((url, name, colour if n else "inherit", n) for url, name, n, colour in links))

    @admin.display(description="oldest pending")
    def oldest_pending(self, obj):
        if obj.oldest_pending_at is None:
            return "—"
        return results.duration((timezone.now() - obj.oldest_pending_at).total_seconds())

    @admin.display(description="VTEX feed backlog", ordering="feed_backlog_age")
    def vtex_backlog(self, obj):
        if obj.feed_backlog_checked_at is None:
            return "not checked"
        text = f"{obj.feed_backlog_quantity if obj.feed_backlog_quantity is not None else '?'} waiting"
        if obj.feed_backlog_quantity:
            text += f", oldest {results.duration(obj.feed_backlog_age)}"
        warning = store_ops.backlog_warning(obj.feed_backlog_age, obj.feed_retention)
        checked = f"checked {when(obj.feed_backlog_checked_at)}"
        if warning:
            return format_html('<strong class="backlog-warning" style="color:#b00020" title="{}">⚠ {}</strong>', warning, text)
        return format_html('<span title="{}">{}</span>', checked, text)

    @admin.display(description="open alerts", ordering="open_alerts")
    def alerts(self, obj):
        if not obj.open_alerts:
            return "0"
        url = reverse("admin:integration_alert_changelist") + "?" + urlencode({"state": "open", "account__id__exact": obj.pk})
        return format_html('<a href="{}" style="color:#b00020;font-weight:bold">{}</a>', url, obj.open_alerts)

    @admin.display(description="name", ordering="name")
    def store_name(self, obj):
        return truncated(obj.name, "16em")

    # --- actions ---------------------------------------------------------------------------------
    def _each(self, request, queryset, operation):
        for account in queryset.select_related(None).order_by("name"):
            result = operation(account)
            self.message_user(request, result.message, LEVELS[result.level])

    @admin.action(description="Test connection (read the feed configuration)", permissions=["operate"])
    def check_connection(self, request, queryset):
        self._each(request, queryset, store_ops.check_store_connection)

    @admin.action(description="Run feed cycle now", permissions=["operate"])
    def run_feed_cycle(self, request, queryset):
        self._each(request, queryset, store_ops.run_feed_cycle_now)

    @admin.action(description="Pause (keep receiving, send nothing)", permissions=["operate"])
    def pause_stores(self, request, queryset):
        self._each(request, queryset, store_ops.pause_store)

    @admin.action(description="Resume", permissions=["operate"])
    def resume_stores(self, request, queryset):
        self._each(request, queryset, store_ops.resume_store)

    @admin.action(description="Reconcile now", permissions=["operate"])
    def reconcile_stores(self, request, queryset):
        self._each(request, queryset, store_ops.reconcile_now)

    @admin.action(description="Create test orders (sandbox stores only)", permissions=["operate"])
    def create_test_orders(self, request, queryset):
        self._each(request, queryset, store_ops.create_sandbox_orders)

    # --- the store page ------------------------------------------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update(self._store_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _store_page_context(self, request, account):
        queries.attach_sync_figures([account])
        attach_update_figures([account])
        report = account.last_reconcile_report or {}
        config = FeedConfiguration.objects.filter(account=account).first()
        return {
            "health": account,
            "held_updates_url": reverse("admin:integration_vtexupdate_changelist") + f"?account__id__exact={account.pk}&status__exact=held",
            "failed_updates_url": reverse("admin:integration_failedupdate_changelist") + f"?account__id__exact={account.pk}",
            "refusals_url": refusals_url(account.pk),
            "oldest_pending_age": self.oldest_pending(account),
            "backlog_warning": store_ops.backlog_warning(account.feed_backlog_age, account.feed_retention),
            "backlog_age": results.duration(account.feed_backlog_age) if account.feed_backlog_age is not None else "?",
            "rules_warning": feed_configuration.rules_outside_feed_message(account),
            "reconcile_report": report,
            "reconcile_brought_in": ", ".join(report.get("brought_in") or []),
            "feed_config": config,
            "can_sync_feed": self.has_change_permission(request, account),
            "feed_push_url": reverse("admin:integration_account_feed_push", args=[account.pk]),
            "feed_load_url": reverse("admin:integration_account_feed_load", args=[account.pk]),
            "expression_url": reverse("admin:integration_account_expression", args=[account.pk]),
            "add_binding_url": reverse("admin:integration_adapterbinding_add") + "?" + urlencode({"account": account.pk}),
            "can_add_binding": self.admin_site._registry[AdapterBinding].has_add_permission(request),
            "page_actions": [
                (reverse("admin:integration_account_page_action", args=[account.pk, name]),
                 name.replace("_", "-"), getattr(self, name).short_description.split(" (")[0])
                for name in self.PAGE_ACTIONS
                if name != "create_test_orders" or store_ops.may_be_sandbox(account)
            ] if self.has_operate_permission(request) else [],
            # The demo store's credentials are the sandbox's own development values, not a VTEX
            # secret: shown so a newcomer can call the sandbox with them (docs: the sandbox's README).
            "demo_credentials": (account.app_key, DEMO_APP_TOKEN) if settings.HUB_DEMO and account.is_demo else None,
        }

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        added = feed_configuration.add_cancellation_request_rule(form.instance)
        if added:
            self.message_user(request, added, messages.INFO)
        warning = feed_configuration.rules_outside_feed_message(form.instance)
        if warning:
            self.message_user(request, warning, messages.WARNING)

    # --- feed configuration: push, load, test an expression --------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="integration_dashboard"),
            path("<int:object_id>/feed/push/", view(self.feed_push_view), name="%s_%s_feed_push" % info),
            path("<int:object_id>/feed/load/", view(self.feed_load_view), name="%s_%s_feed_load" % info),
            path("<int:object_id>/feed/expression/", view(self.expression_view), name="%s_%s_expression" % info),
            path("<int:object_id>/run/<str:action>/", view(self.page_action_view), name="%s_%s_page_action" % info),
        ] + super().get_urls()

    # The list's actions that the store page offers as buttons (the page tells the operator to use them).
    PAGE_ACTIONS = ("check_connection", "run_feed_cycle", "reconcile_stores", "create_test_orders")

    def page_action_view(self, request, object_id, action):
        """Run one of the list's actions on this store alone (POST from a button), then back to its page."""
        if request.method != "POST" or action not in self.PAGE_ACTIONS:
            return HttpResponseNotAllowed(["POST"])
        if not self.has_operate_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=object_id)
        getattr(self, action)(request, Account.objects.filter(pk=account.pk))
        return redirect(reverse("admin:integration_account_change", args=[account.pk]))

    def dashboard_view(self, request):
        return dashboard_view(self, request)

    def _store_or_404(self, object_id):
        account = Account.objects.filter(pk=object_id).first()
        if account is None:
            raise Http404("No such store.")
        return account

    def feed_push_view(self, request, object_id):
        return self._feed_sync_view(request, object_id, "push")

    def feed_load_view(self, request, object_id):
        return self._feed_sync_view(request, object_id, "load")

    def _feed_sync_view(self, request, object_id, direction):
        """Show what a push (or a load) would change, as a diff; act only on confirmation."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        account = self._store_or_404(object_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        store_url = reverse("admin:integration_account_change", args=[account.pk])
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            operation = feed_configuration.push_feed_configuration if direction == "push" else feed_configuration.load_feed_configuration
            result = operation(account)
            self.message_user(request, result.message, LEVELS[result.level])
            if direction == "push" and result.ok:
                warning = feed_configuration.rules_outside_feed_message(account)
                if warning:
                    self.message_user(request, warning, messages.WARNING)
            return HttpResponseRedirect(store_url)
        comparison = feed_configuration.compare_feed_configuration(account)
        diff = comparison.diff(direction)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"{'Push the feed configuration to VTEX' if direction == 'push' else 'Load the feed configuration from VTEX'}: {account.name}",
            "direction": direction,
            "comparison": comparison,
            "diff_lines": [(_diff_class(line), line) for line in diff],
            "shared_warning": feed_configuration.SHARED_FEED_WARNING,
            "store_url": store_url,
            "can_confirm": (not comparison.error and (direction == "push" and not comparison.local_errors
                                                       or direction == "load" and comparison.remote is not None)),
        }
        return TemplateResponse(request, "admin/integration/account/feed_sync.html", context)

    def expression_view(self, request, object_id):
        """Try a FromOrders (JSONata) expression on an order: the store's latest, or any pasted JSON."""
        account = self._store_or_404(object_id)
        # Change, not view: an evaluation costs a process and up to its time limit.
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        result, error, evaluated, check = None, "", False, None
        if request.method == "POST":
            form = ExpressionTestForm(request.POST)
            if form.is_valid():
                # The hub's JSONata and, credentials allowing, VTEX's own test endpoint: both shown.
                check = feed_configuration.check_expression(account, form.cleaned_data["expression"], form.cleaned_data["document"])
                result, error = check.local_result, check.local_error
                evaluated = not error
        else:
            config = FeedConfiguration.objects.filter(account=account).first()
            snapshot = feed_configuration.latest_order_snapshot(account)
            form = ExpressionTestForm(initial={
                "expression": request.GET.get("expression") or (config.expression if config else "") or 'status = "ready-for-handling"',
                "document": json.dumps(snapshot, indent=2, ensure_ascii=False) if snapshot is not None else "{}",
            })
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"Test a JSONata expression: {account.name}",
            "form": form,
            "evaluated": evaluated,
            "result_json": json.dumps(result, indent=2, ensure_ascii=False, default=str) if evaluated else "",
            "passes": result is True,
            "error": error,
            "check": check,
            "store_url": reverse("admin:integration_account_change", args=[account.pk]),
            "uses_from_orders": FeedConfiguration.objects.filter(account=account, filter_type=FilterType.FROM_ORDERS).exists(),
        }
        return TemplateResponse(request, "admin/integration/account/expression_test.html", context)


def _diff_class(line):
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    return "diff-same"

