from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from api.errors import api_not_found
from core.health import health

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("health/", health, name="health"),
    # Browsers ask every site for it (the admin names no icon): Baeum's, not a 404.
    path("favicon.ico", RedirectView.as_view(url=static("staff/favicon.svg"), permanent=False)),
    path("admin/", admin.site.urls),
    path("staff/", include("staff.urls")),
    path("api/v1/", include("api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    # JSON, never Django's HTML 404 page, anywhere under /api/ (even with DEBUG on).
    re_path(r"^api/", api_not_found),
]

if settings.BAEUM_BENCH_ENDPOINTS:
    urlpatterns.insert(0, path("bench/", include("bench.bare")))

handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"
