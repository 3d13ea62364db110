from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from integration import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("hooks/", include("integration.vtex_push.urls")),
    path("health/", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
]
