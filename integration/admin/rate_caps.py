"""The store page's VTEX rate caps: per route, the cap in force, the learned one with when and why
it last changed, and the operator's pin (the only field that can be edited)."""
from django import forms
from django.contrib import admin
from django.utils.html import format_html

from integration.models import RouteCap
from integration.pipeline import route_caps


class RouteCapForm(forms.ModelForm):
    class Meta:
        model = RouteCap
        fields = ["pinned_cap"]

    def save(self, commit=True):
        # Only the pin is the operator's: the learned figures are written by every worker at any
        # moment, and saving the whole row would put back the ones this page was drawn with.
        if commit and self.instance.pk:
            RouteCap.objects.filter(pk=self.instance.pk).update(pinned_cap=self.cleaned_data["pinned_cap"])
            return self.instance
        return super().save(commit)


class RouteCapInline(admin.TabularInline):
    model = RouteCap
    form = RouteCapForm
    extra = 0
    can_delete = False
    verbose_name = "VTEX rate cap"
    verbose_name_plural = "VTEX rate caps (calls a minute; learned from VTEX's answers unless pinned)"
    fields = ["route", "in_force", "learned_cap", "changed_at", "change_reason", "pinned_cap"]
    readonly_fields = ["route", "in_force", "learned_cap", "changed_at", "change_reason"]
    ordering = ["route"]

    def has_add_permission(self, request, obj=None):
        return False  # a route's row appears the first time the hub calls it

    # Whoever sees the store sees its caps, and whoever may change the store may pin them.
    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.has_perm("integration.view_account") or user.has_perm("integration.change_account")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("integration.change_account")

    @admin.display(description="in force")
    def in_force(self, obj):
        if obj.pinned_cap is not None:
            return format_html("<strong>{}</strong> (pinned)", "no cap" if obj.pinned_cap == 0 else f"{obj.pinned_cap:,}")
        cap = route_caps.in_force(obj)
        if not route_caps.learns(obj.route):
            return format_html("{} (configured; not learned)", f"{cap:,}" if cap else "no cap")
        return format_html('{} <span class="quiet">(starts at {}, at most {})</span>', f"{cap:,}",
                           f"{route_caps.start_cap(obj.route):,}", f"{route_caps.ceiling(obj.route):,}")
