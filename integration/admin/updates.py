"""Updates to VTEX (invoices, tracking, cancels from the ERP): the list, the Failed updates page,
the actions (one call to integration.operations.updates each), the operator's invoice form, and
the ERP API tokens (issued from a binding's page, shown once, revocable)."""
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from integration.operations import updates as ops
from integration.admin.display import order_url
from integration.models import ErpToken, FailedUpdate, Order, UpdateAttempt, UpdateStatus, VtexUpdate
from integration.pipeline.update_intake import UpdateRefused
from integration.update_bodies import BodyInvalid

UPDATE_COLOURS = {
    UpdateStatus.SENT: "#1a7f37", UpdateStatus.RESOLVED: "#1a7f37", UpdateStatus.FAILED: "#b00020",
    UpdateStatus.HELD: "#9a6700", UpdateStatus.QUEUED: "#0969da", UpdateStatus.SENDING: "#0969da",
    UpdateStatus.ABANDONED: "#6e7781",
}
UPDATE_OPERATIONS = {"retry": "Retry now", "resolve": "Mark resolved — done in VTEX", "abandon": "Abandon"}


def update_badge(update):
    return format_html('<strong class="update-status update-status-{}" style="color:{}">{}</strong>', update.status,
                       UPDATE_COLOURS.get(update.status, "inherit"), update.get_status_display())


def order_updates(order):
    """The order page's timeline of updates to VTEX, with their attempts (in time order)."""
    updates = list(order.updates.select_related("created_by", "resolved_by")
                   .prefetch_related(Prefetch("attempt_log", queryset=UpdateAttempt.objects.order_by("started_at", "id")))
                   .order_by("created_at", "id"))
    for update in updates:
        update.badge = update_badge(update)
        update.actionable = update.status in ops.RETRYABLE
        update.body_json = json.dumps(update.body, indent=2, ensure_ascii=False)
    return updates


def attach_update_figures(accounts):
    """held_updates, failed_updates and refused_cancellations on each store of a list page: two
    grouped queries for all."""
    ids = [a.pk for a in accounts]
    figures = ops.open_update_figures(ids)
    refusals = ops.refusal_figures(ids)
    for account in accounts:
        account.held_updates, account.failed_updates = figures.get(account.pk, (0, 0))
        account.refused_cancellations = refusals.get(account.pk, 0)


def refusals_url(account_pk):
    """The store's orders whose cancellation request the ERP refused (see the order list's filter)."""
    return reverse("admin:integration_order_changelist") + f"?account__id__exact={account_pk}&refusal=open"


@admin.display(description="updates to VTEX held / failed · refusals")
def updates_to_vtex(obj):
    """A store list column: its held and failed updates to VTEX and the cancellation requests the
    ERP refused that wait for a decision, each linked to its list."""
    base = reverse("admin:integration_vtexupdate_changelist")
    held, failed = getattr(obj, "held_updates", 0), getattr(obj, "failed_updates", 0)
    refused = getattr(obj, "refused_cancellations", 0)
    return format_html(
        '<a href="{}?account__id__exact={}&status__exact=held" class="updates-held" style="color:{}">{}</a> / '
        '<a href="{}?account__id__exact={}" class="updates-failed" style="color:{}">{}</a> · '
        '<a href="{}" class="cancellations-refused" style="color:{}">{}</a>',
        base, obj.pk, "#9a6700" if held else "inherit", held,
        reverse("admin:integration_failedupdate_changelist"), obj.pk, "#b00020" if failed else "inherit", failed,
        refusals_url(obj.pk), "#b00020" if refused else "inherit", refused)


class UpdateAdminBase(admin.ModelAdmin):
    list_display = ["order_link", "account", "kind", "invoice_number", "status_label", "attempts", "next_attempt_at",
                    "reason", "source", "created_at"]
    list_display_links = None
    list_filter = ["account", "kind", "status", "source", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["order", "account"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["order__order_id", "invoice_number"]
    search_help_text = "Exact VTEX order id or invoice number."
    actions = ["retry_now", "mark_resolved", "abandon"]
    status_filter = None

    def get_queryset(self, request):
        qs = super().get_queryset(request).defer("body", "order__snapshot")
        return qs.filter(status=self.status_filter) if self.status_filter else qs

    def get_search_results(self, request, queryset, search_term):
        terms = search_term.split()
        if not terms:
            return queryset, False
        return queryset.filter(order__order_id__in=terms) | queryset.filter(invoice_number__in=terms), False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """An update is shown on its order's page, with its attempts and the order's other updates."""
        row = VtexUpdate.objects.filter(pk=object_id).values_list("pk", "order_id").first() if str(object_id).isdigit() else None
        if row is None:
            raise Http404("No such update.")
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(order_url(row[1]) + f"#update-{row[0]}")

    @admin.display(description="order", ordering="order__order_id")
    def order_link(self, obj):
        return format_html('<a href="{}#update-{}">{}</a>', order_url(obj.order_id), obj.pk, obj.order.order_id)

    @admin.display(description="status")
    def status_label(self, obj):
        return update_badge(obj)

    @admin.display(description="reason / last error")
    def reason(self, obj):
        return Truncator(obj.hold_reason if obj.status == UpdateStatus.HELD else obj.last_error).chars(160)

    def _report(self, request, outcome):
        self.message_user(request, outcome.message, messages.SUCCESS if outcome.changed else messages.WARNING)

    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request, queryset):
        self._report(request, ops.retry_updates(queryset))

    @admin.action(description="Mark resolved — done by hand in VTEX", permissions=["change"])
    def mark_resolved(self, request, queryset):
        self._report(request, ops.resolve_updates(queryset, request.user))

    @admin.action(description="Abandon", permissions=["change"])
    def abandon(self, request, queryset):
        self._report(request, ops.abandon_updates(queryset, request.user))

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<int:update_id>/operate/", self.admin_site.admin_view(self.operate_view), name="%s_%s_operate" % info),
            path("enter-invoice/<int:order_pk>/", self.admin_site.admin_view(self.enter_invoice_view), name="%s_%s_enter_invoice" % info),
        ] + super().get_urls()

    def operate_view(self, request, update_id):
        """The order page's buttons on one update."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        updates = VtexUpdate.objects.filter(pk=update_id)
        order_pk = updates.values_list("order_id", flat=True).first()
        if order_pk is None:
            raise Http404("No such update.")
        op = request.POST.get("op", "")
        if op == "retry":
            outcome = ops.retry_updates(updates)
        elif op == "resolve":
            outcome = ops.resolve_updates(updates, request.user)
        elif op == "abandon":
            outcome = ops.abandon_updates(updates, request.user)
        else:
            self.message_user(request, "Unknown operation; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(order_url(order_pk))
        self._report(request, outcome)
        return HttpResponseRedirect(order_url(order_pk) + f"#update-{update_id}")

    def enter_invoice_view(self, request, order_pk):
        """For the day the ERP is down: the operator types the invoice; it goes out like the ERP's."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("account").defer("snapshot"), pk=order_pk)
        error = ""
        if request.method == "POST":
            form = InvoiceForm(request.POST)
            if form.is_valid():
                try:
                    accepted = ops.enter_invoice(order, form.vtex_body(), request.user)
                except BodyInvalid as exc:
                    form.add_error(form.FIELD_FOR.get(exc.field.split("[")[0], None), f"{exc.field}: {exc.message}" if exc.field else exc.message)
                except UpdateRefused as exc:
                    error = exc.message
                else:
                    self.message_user(request, f"Invoice {accepted.update.invoice_number}: {accepted.outcome}; "
                                      "it goes to VTEX in order (after start-handling).", messages.SUCCESS)
                    return HttpResponseRedirect(order_url(order.pk) + f"#update-{accepted.update.pk}")
        else:
            form = InvoiceForm(initial={"items": json.dumps(_items_of(order), indent=1)})
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": f"Enter an invoice for order {order.order_id}",
            "form": form, "order": order, "error": error, "order_page": order_url(order.pk),
        }
        return TemplateResponse(request, "admin/integration/vtexupdate/enter_invoice.html", context)


def _items_of(order):
    snapshot = Order.objects.filter(pk=order.pk).values_list("snapshot", flat=True).first() or {}
    items = snapshot.get("items") if isinstance(snapshot, dict) else None
    return [{"id": str(i.get("id", "")), "price": i.get("sellingPrice", i.get("price", 0)), "quantity": i.get("quantity", 1)}
            for i in (items or []) if isinstance(i, dict)]


class InvoiceForm(forms.Form):
    FIELD_FOR = {"type": "type", "issuanceDate": "issuance_date", "invoiceNumber": "invoice_number",
                 "invoiceValue": "invoice_value", "items": "items", "invoiceKey": "invoice_key", "invoiceUrl": "invoice_url",
                 "courier": "courier", "trackingNumber": "tracking_number", "trackingUrl": "tracking_url"}
    type = forms.ChoiceField(choices=[("Output", "Output (a sale)"), ("Input", "Input (returned items)")])
    invoice_number = forms.CharField(max_length=100)
    issuance_date = forms.CharField(max_length=40, help_text="ISO 8601, e.g. 2026-12-02T10:00:00-03:00")
    invoice_value = forms.IntegerField(min_value=1, help_text="In cents: 2499 for 24.99.")
    items = forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
                            help_text='JSON: [{"id": "SKU", "price": unit price in cents, "quantity": n}]')
    invoice_key = forms.CharField(max_length=500, required=False)
    invoice_url = forms.CharField(max_length=2000, required=False)
    courier = forms.CharField(max_length=500, required=False)
    tracking_number = forms.CharField(max_length=500, required=False)
    tracking_url = forms.CharField(max_length=2000, required=False)

    def clean_items(self):
        try:
            value = json.loads(self.cleaned_data["items"])
        except ValueError:
            raise forms.ValidationError("Not JSON: a list of {id, price, quantity}.") from None
        return value

    def vtex_body(self):
        data = self.cleaned_data
        body = {"type": data["type"], "issuanceDate": data["issuance_date"], "invoiceNumber": data["invoice_number"],
                "invoiceValue": data["invoice_value"], "items": data["items"]}
        for vtex, name in (("invoiceKey", "invoice_key"), ("invoiceUrl", "invoice_url"), ("courier", "courier"),
                           ("trackingNumber", "tracking_number"), ("trackingUrl", "tracking_url")):
            if data.get(name):
                body[vtex] = data[name]
        return body


@admin.register(VtexUpdate)
class VtexUpdateAdmin(UpdateAdminBase):
    pass


@admin.register(FailedUpdate)
class FailedUpdateAdmin(UpdateAdminBase):
    status_filter = UpdateStatus.FAILED
    list_filter = ["account", "kind", "source", ("created_at", admin.DateFieldListFilter)]


# --- ERP API tokens -------------------------------------------------------------------------------
class ErpTokenInline(admin.TabularInline):
    """On the binding's page: its tokens, read-only; issue and revoke through the links."""

    model = ErpToken
    extra = 0
    can_delete = False
    fields = ["hint", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    verbose_name_plural = "ERP API tokens (issue a new one, or revoke, from 'ERP API tokens')"

    def has_add_permission(self, request, obj=None):
        return False


class IssueTokenForm(forms.ModelForm):
    class Meta:
        model = ErpToken
        fields = ["binding", "name"]


@admin.register(ErpToken)
class ErpTokenAdmin(admin.ModelAdmin):
    list_display = ["hint", "name", "binding", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["binding"]
    list_select_related = ["binding__account"]
    actions = ["revoke"]
    form = IssueTokenForm

    def get_readonly_fields(self, request, obj=None):
        return ["binding", "name", "hint", "created_at", "last_used_at", "revoked_at"] if obj is not None else []

    def get_changeform_initial_data(self, request):
        return {"binding": request.GET.get("binding")}

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        row, token = ops.issue_token(form.cleaned_data["binding"], form.cleaned_data.get("name", ""), request.user)
        obj.pk, obj.hint, obj.token_hash = row.pk, row.hint, row.token_hash
        # Shown once, here: only its hash is stored.
        self.message_user(request, format_html(
            'Token issued for {}. Copy it now, it is not shown again: <code id="new-erp-token">{}</code>', row.binding, token),
            messages.SUCCESS)

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:integration_erptoken_changelist") + f"?binding__id__exact={obj.binding_id}")

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = ops.revoke_tokens(queryset)
        self.message_user(request, f"Revoked {count} token{'s' if count != 1 else ''}.", messages.SUCCESS if count else messages.WARNING)
