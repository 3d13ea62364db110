"""Mounted under /hooks/ by integration/urls.py.

The canonical URLs end with a slash; the same URLs without it are accepted too, so that a POST
never meets APPEND_SLASH (a redirect VTEX will not follow, or a RuntimeError under DEBUG).
"""
from django.urls import path, re_path

from integration.vtex_push.views import vtex_hook

urlpatterns = [
    path("vtex/<str:account_id>/<str:secret>/", vtex_hook, name="vtex-hook"),
    path("vtex/<str:account_id>/", vtex_hook, name="vtex-hook-header"),
    re_path(r"^vtex/(?P<account_id>[^/]+)/(?P<secret>[^/]+)$", vtex_hook),
    re_path(r"^vtex/(?P<account_id>[^/]+)$", vtex_hook),
]
