"""The operator's admin: syncs (all, failed, held), one page per order, and the actions that fix things.

Every action is one call to a function of `integration.operations`, needs the change permission,
and says what happened to how many. The lists stay fast on hundreds of thousands of syncs: the
related rows come in the same query, the order snapshot is never loaded for a list, the filters
need no scan of the syncs table to draw themselves, and nothing counts the unfiltered table.
"""
import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from integration.admin.display import LEVELS, order_url, truncated
from integration.admin.updates import order_updates
from integration.models import (
    Account, AdapterBinding, FailedSync, FeedEvent, HeldSync, Order, OrderSync, RuleAction, StartHandlingState,
    SyncAttempt, SyncStatus, VtexUpdate,
)
from integration.operations import syncs as sync_ops
from integration.plugins.parsed_order import InvalidOrder, parse_order
from integration.vtex.errors import VtexError

STATUS_COLOURS = {
    SyncStatus.SUCCEEDED: "#1a7f37", SyncStatus.DELIVERED_BY_HAND: "#1a7f37", SyncStatus.FAILED: "#b00020",
    SyncStatus.HELD: "#9a6700", SyncStatus.PENDING: "#0969da", SyncStatus.SKIPPED: "#6e7781",
    SyncStatus.ABANDONED: "#6e7781",
}


def status_badge(status, label):
    return format_html('<strong class="sync-status sync-status-{}" style="color:{}">{}</strong>',
                       status, STATUS_COLOURS.get(status, "inherit"), label)


# --- filters that draw themselves without scanning the syncs table ---------------------------------
class StoreFilter(admin.SimpleListFilter):
    title = "store"
    parameter_name = "store"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in Account.objects.order_by("name").values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            # A sync's binding belongs to its order's store. The store's few binding ids, not a join:
            # a join lets SQLite's planner start from the store and sort all its syncs.
            bindings = list(AdapterBinding.objects.filter(account_id=self.value()).order_by().values_list("pk", flat=True))
            return queryset.filter(binding_id__in=bindings)
        return queryset


class AdapterFilter(admin.SimpleListFilter):
    title = "adapter"
    parameter_name = "binding"

    def lookups(self, request, model_admin):
        return [(str(b.pk), f"{b.account.name} → {b.name or b.adapter_key} ({b.adapter_key})")
                for b in AdapterBinding.objects.select_related("account").order_by("account__name", "pk")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(binding_id=self.value())
        return queryset


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return RuleAction.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action=self.value())
        return queryset


# --- syncs --------------------------------------------------------------------------------------
class SyncAdminBase(admin.ModelAdmin):
    list_display = ["order_link", "store", "adapter", "action", "status_label", "attempts", "next_attempt_at",
                    "error_excerpt", "created_at"]
    list_display_links = None
    list_filter = [StoreFilter, AdapterFilter, ActionFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["order__account", "binding"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ["created_at", "attempts", "next_attempt_at"]
    search_fields = ["order__order_id"]  # searched by exact id in get_search_results
    search_help_text = "Exact VTEX order id; several ids separated by spaces."
    actions = ["retry_now", "resolve_delivered_by_hand", "resolve_abandon"]
    change_list_template = "admin/integration/ordersync/change_list.html"
    status_filter = None  # the proxy pages show one status

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self.status_filter:
            qs = qs.filter(status=self.status_filter)
        # The order snapshot is large and no list shows it.
        return qs.defer("order__snapshot")

    def get_search_results(self, request, queryset, search_term):
        ids = search_term.split()
        if not ids:
            return queryset, False
        # Exact and indexed: `=order__order_id` would be iexact, which no index serves.
        return queryset.filter(order__order_id__in=ids), False

    # Read-only: syncs come from routing, change only through the actions, and are never deleted.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A sync is shown on its order's page, with the order's other syncs and events."""
        sync = OrderSync.objects.filter(pk=object_id).values_list("pk", "order_id").first() if str(object_id).isdigit() else None
        if sync is None:
            raise Http404("No such sync.")
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(order_url(sync[1], sync[0]))

    def action_checkbox(self, obj):
        # The stock one labels the box with str(sync), which reads the binding's store (one more join),
        # and renders a form widget template per row; this is the same markup, written directly.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {} {} → {}">',
            helpers.ACTION_CHECKBOX_NAME, obj.pk, obj.order.order_id, obj.action, obj.binding.name or obj.binding.adapter_key)

    @admin.display(description="order", ordering="order__order_id")
    def order_link(self, obj):
        return format_html('<a href="{}">{}</a>', order_url(obj.order_id, obj.pk), obj.order.order_id)

    @admin.display(description="store")
    def store(self, obj):
        return truncated(obj.order.account.name, "12em")

    @admin.display(description="adapter")
    def adapter(self, obj):
        return truncated(obj.binding.name or obj.binding.adapter_key, "12em")

    @admin.display(description="status")
    def status_label(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="last error / reason")
    def error_excerpt(self, obj):
        text = obj.last_error if obj.status != SyncStatus.HELD else (obj.hold_reason or obj.last_error)
        return truncated(Truncator(text or obj.hold_reason).chars(160), "22em")

    def changelist_view(self, request, extra_context=None):
        order_admin = self.admin_site._registry.get(Order)
        extra = {
            "can_retry_matching": self.has_change_permission(request),
            "can_sync_order": bool(order_admin and order_admin.has_change_permission(request)),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    # --- actions ------------------------------------------------------------------------------
    def _report(self, request, outcome):
        self.message_user(request, outcome.message, LEVELS[outcome.level])

    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request, queryset):
        self._report(request, sync_ops.retry_syncs(queryset))

    @admin.action(description="Mark resolved — delivered by hand", permissions=["change"])
    def resolve_delivered_by_hand(self, request, queryset):
        self._report(request, sync_ops.resolve_delivered_by_hand(queryset, request.user))

    @admin.action(description="Mark resolved — abandon", permissions=["change"])
    def resolve_abandon(self, request, queryset):
        self._report(request, sync_ops.abandon_syncs(queryset, request.user))

    # --- retry all matching the filter ------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("retry-matching/", self.admin_site.admin_view(self.retry_matching_view), name="%s_%s_retry_matching" % info),
        ] + super().get_urls()

    def retry_matching_view(self, request):
        """Confirm, then retry every sync matching the changelist's filter (the querystring), throttled."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        querystring = request.GET.urlencode()
        changelist_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        back = f"{changelist_url}?{querystring}" if querystring else changelist_url
        try:
            queryset = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            self.message_user(request, "That filter is not valid; nothing was retried.", messages.ERROR)
            return HttpResponseRedirect(changelist_url)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            outcome = sync_ops.retry_matching(queryset)
            self._report(request, outcome)
            return HttpResponseRedirect(back)
        count = queryset.filter(status__in=sync_ops.ACTIONABLE).count()

        per_minute = max(1, settings.RETRY_ALL_PER_MINUTE)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Retry all matching this filter",
            "count": count,
            "per_minute": per_minute,
            "spread": sync_ops._duration((count - 1) / per_minute) if count > 1 else "",
            "querystring": querystring,
            "changelist_url": back,
            "filters": [(k, v) for k, v in request.GET.items() if k not in ("p", "o")],
        }
        return TemplateResponse(request, "admin/integration/ordersync/retry_matching.html", context)


@admin.register(OrderSync)
class OrderSyncAdmin(SyncAdminBase):
    list_filter = [("status", admin.ChoicesFieldListFilter)] + SyncAdminBase.list_filter


@admin.register(FailedSync)
class FailedSyncAdmin(SyncAdminBase):
    status_filter = SyncStatus.FAILED


@admin.register(HeldSync)
class HeldSyncAdmin(SyncAdminBase):
    status_filter = SyncStatus.HELD


# --- orders -------------------------------------------------------------------------------------
def _way_back_context(request, admin_site, order):
    """The order page's updates to VTEX (invoices, tracking, cancels) and their buttons."""
    update_admin = admin_site._registry.get(VtexUpdate)
    can_operate = bool(update_admin and update_admin.has_change_permission(request))
    return {
        "updates": order_updates(order),
        "can_operate_updates": can_operate,
        "enter_invoice_url": reverse("admin:integration_vtexupdate_enter_invoice", args=[order.pk]) if can_operate else "",
    }


class SyncOrderForm(forms.Form):
    account = forms.ModelChoiceField(Account.objects.order_by("name"), label="Store")
    order_id = forms.CharField(label="VTEX order id", max_length=64, help_text="For example 1234567890123-01.")

    def clean_order_id(self):
        value = self.cleaned_data["order_id"].strip()
        if not value or any(c.isspace() or c == "/" for c in value):
            raise forms.ValidationError("One order id, without spaces or slashes.")
        return value


class RefusalFilter(admin.SimpleListFilter):
    """Orders whose cancellation request the ERP refused: those still waiting for a decision in
    VTEX's admin (store health counts them), or every one with a refusal recorded."""

    title = "cancellation refused by the ERP"
    parameter_name = "refusal"

    def lookups(self, request, model_admin):
        return [("open", "Waiting for a decision"), ("any", "Any refusal recorded")]

    def queryset(self, request, queryset):
        from integration.operations.updates import refusals_awaiting_decision

        if self.value() == "open":
            return queryset.filter(pk__in=refusals_awaiting_decision().values("pk"))
        if self.value() == "any":
            return queryset.exclude(cancellation_refusal="")
        return queryset


ORDER_OPERATIONS = {"retry_sync", "resolve_by_hand", "abandon_sync", "retry_start_handling", "start_handling_anyway"}


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["order_link", "store", "vtex_status", "canceled", "start_handling_state", "created_at"]
    list_display_links = None
    list_filter = ["account", "start_handling_state", "canceled", RefusalFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["account"]
    list_per_page = 100
    search_fields = ["order_id"]  # searched by exact id in get_search_results
    search_help_text = "Exact VTEX order id; several ids separated by spaces."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ["created_at"]
    actions = ["retry_start_handling", "start_handling_anyway"]
    change_list_template = "admin/integration/order/change_list.html"
    change_form_template = "admin/integration/order/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("snapshot")

    def get_search_results(self, request, queryset, search_term):
        ids = search_term.split()
        return (queryset.filter(order_id__in=ids) if ids else queryset), False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj):
        return format_html('<a href="{}">{}</a>', order_url(obj.pk), obj.order_id)

    @admin.display(description="store", ordering="account__name")
    def store(self, obj):
        return truncated(obj.account.name, "14em")

    def changelist_view(self, request, extra_context=None):
        extra = {"can_sync_order": self.has_change_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    @admin.action(description="Retry start-handling", permissions=["change"])
    def retry_start_handling(self, request, queryset):
        outcome = sync_ops.retry_start_handling(queryset)
        self.message_user(request, outcome.message, LEVELS[outcome.level])

    @admin.action(description="Start handling anyway", permissions=["change"])
    def start_handling_anyway(self, request, queryset):
        outcome = sync_ops.start_handling_anyway(queryset, request.user)
        self.message_user(request, outcome.message, LEVELS[outcome.level])

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("sync-order/", self.admin_site.admin_view(self.sync_order_view), name="%s_%s_sync_order" % info),
            path("<path:object_id>/operate/", self.admin_site.admin_view(self.operate_view), name="%s_%s_operate" % info),
        ] + super().get_urls()

    # --- the order page -------------------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Read-only: what the hub knows of one order. Operators act through the buttons, never by editing."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        if not str(object_id).isdigit():
            raise Http404("No such order.")
        order = get_object_or_404(Order.objects.select_related("account", "start_handling_decided_by"), pk=object_id)
        if not self.has_view_or_change_permission(request, order):
            raise PermissionDenied
        sync_admin = self.admin_site._registry.get(OrderSync)
        can_operate_syncs = bool(sync_admin and sync_admin.has_change_permission(request))
        syncs = list(
            order.syncs.select_related("binding", "resolved_by")
            # In time order: a manual retry starts the attempt numbers again at 1.
            .prefetch_related(Prefetch("attempt_log", queryset=SyncAttempt.objects.order_by("started_at", "id")))
            .order_by("binding__name", "binding_id", "action", "state", "id")
        )
        for sync in syncs:
            sync.actionable = sync.status in sync_ops.ACTIONABLE
            sync.badge = status_badge(sync.status, sync.get_status_display())
        parsed, parse_error = None, ""
        if order.snapshot is not None:
            try:
                parsed = parse_order(order.snapshot)
            except InvalidOrder as exc:
                parse_error = str(exc)
        events = (FeedEvent.objects.filter(account_id=order.account_id, order_id=order.order_id)
                  .defer("payload").order_by("received_at", "id"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Order {order.order_id}",
            "subtitle": order.account.name,
            "order": order,
            "original": order,
            "parsed": parsed,
            "parse_error": parse_error,
            "events": list(events),
            "group_siblings": list(order.group_siblings().only("pk", "order_id", "vtex_status", "outside_scope_reason")[:50]),
            "syncs": syncs,
            "raw_json": json.dumps(order.snapshot, indent=2, ensure_ascii=False) if order.snapshot is not None else "",
            "can_operate_syncs": can_operate_syncs,
            "can_retry_start_handling": (self.has_change_permission(request, order)
                                         and order.start_handling_state in sync_ops.RETRYABLE_START_HANDLING),
            "can_start_handling_anyway": (self.has_change_permission(request, order)
                                          and order.start_handling_state == StartHandlingState.ABANDONED
                                          and not order.canceled and order.account.call_start_handling),
            "start_handling_abandoned": order.start_handling_state == StartHandlingState.ABANDONED,
            "start_handling_done": order.start_handling_state == StartHandlingState.DONE,
            "operate_url": reverse("admin:integration_order_operate", args=[order.pk]),
            "has_view_permission": True,
            **_way_back_context(request, self.admin_site, order),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.change_form_template, context)

    def operate_view(self, request, object_id):
        """The order page's buttons: one operation on one sync or on the order's start-handling."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        order = get_object_or_404(Order.objects.defer("snapshot"), pk=object_id) if str(object_id).isdigit() else None
        if order is None:
            raise Http404("No such order.")
        op = request.POST.get("op", "")
        if op not in ORDER_OPERATIONS:
            self.message_user(request, "Unknown operation; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(order_url(order.pk))
        if op == "retry_start_handling":
            if not self.has_change_permission(request, order):
                raise PermissionDenied
            outcome = sync_ops.retry_start_handling(Order.objects.filter(pk=order.pk))
            anchor = ""
        elif op == "start_handling_anyway":
            if not self.has_change_permission(request, order):
                raise PermissionDenied
            outcome = sync_ops.start_handling_anyway(Order.objects.filter(pk=order.pk), request.user)
            anchor = ""
        else:
            sync_admin = self.admin_site._registry.get(OrderSync)
            if not (sync_admin and sync_admin.has_change_permission(request)):
                raise PermissionDenied
            syncs = OrderSync.objects.filter(order=order, pk=request.POST.get("sync") or 0)
            if not str(request.POST.get("sync", "")).isdigit() or not syncs.exists():
                self.message_user(request, "No such sync on this order; nothing was changed.", messages.ERROR)
                return HttpResponseRedirect(order_url(order.pk))
            if op == "retry_sync":
                outcome = sync_ops.retry_syncs(syncs)
            elif op == "resolve_by_hand":
                outcome = sync_ops.resolve_delivered_by_hand(syncs, request.user)
            else:
                outcome = sync_ops.abandon_syncs(syncs, request.user)
            anchor = request.POST["sync"]
        self.message_user(request, outcome.message, LEVELS[outcome.level])
        return HttpResponseRedirect(order_url(order.pk, anchor or None))

    # --- bring in one order by id ---------------------------------------------------------------
    def sync_order_view(self, request):
        """'Sync this order now': fetch an order from VTEX by id, store and route it, dispatch."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        result, error = None, ""
        if request.method == "POST":
            form = SyncOrderForm(request.POST)
            if form.is_valid():
                account, order_id = form.cleaned_data["account"], form.cleaned_data["order_id"]
                try:
                    result = sync_ops.sync_order_now(account, order_id)
                except VtexError as exc:
                    error = f"VTEX answered: {exc}"
                if result is not None:
                    self.message_user(request, result.message, LEVELS[result.level])
        else:
            form = SyncOrderForm(initial={"account": request.GET.get("account"), "order_id": request.GET.get("order_id", "")})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Sync this order now",
            "form": form,
            "result": result,
            "error": error,
            "order_page": order_url(result.data["order"].pk) if result and result.data["order"] else "",
        }
        return TemplateResponse(request, "admin/integration/sync_order_form.html", context)
