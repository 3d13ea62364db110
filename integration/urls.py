from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from integration import views
from integration.erp_api.api import api as erp_api, path_not_found as erp_api_path_not_found

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("hooks/", include("integration.vtex_push.urls")),
    path("erp-api/", erp_api.urls),
    re_path(r"^erp-api/", erp_api_path_not_found),
    path("health/", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
]
