"""List cells that keep a changelist within 1400 px: long names are cut, with the full name on hover."""
from django.utils.html import format_html


def truncated(text, width="16em"):
    """`text` on one line, cut with an ellipsis at `width`; the full text in the title attribute."""
    text = "" if text is None else str(text)
    if not text:
        return "—"
    return format_html('<span class="hub-truncate" style="max-width:{}" title="{}">{}</span>', width, text, text)
