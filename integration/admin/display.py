"""List cells that keep a changelist within 1400 px (long names cut, the full name on hover), and
the message levels of operator actions."""
from django.contrib import messages
from django.urls import reverse
from django.utils.html import format_html

from integration.operations import results


def truncated(text, width="16em"):
    """`text` on one line, cut with an ellipsis at `width`; the full text in the title attribute."""
    text = "" if text is None else str(text)
    if not text:
        return "—"
    return format_html('<span class="hub-truncate" style="max-width:{}" title="{}">{}</span>', width, text, text)


# The admin's message level for an operator action's result level (integration.operations.results).
LEVELS = {results.SUCCESS: messages.SUCCESS, results.WARNING: messages.WARNING, results.ERROR: messages.ERROR}


def order_url(order_pk, sync_pk=None):
    """The order page, at one of its syncs when `sync_pk` is given."""
    url = reverse("admin:integration_order_change", args=[order_pk])
    return f"{url}#sync-{sync_pk}" if sync_pk else url
