from csp.decorators import csp_update
from django.urls import include, path, register_converter
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.routers import SimpleRouter

from api import views


class IdConverter:
    """A database id: digits that fit a 64-bit integer; anything longer is simply not found."""

    regex = views.ID_REGEX

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(IdConverter, "id")

router = SimpleRouter(trailing_slash=True)
router.register("rounds", views.RoundViewSet, basename="round")
router.register("applications", views.ApplicationViewSet, basename="application")

urlpatterns = [
    path("", include("api.auth")),
    path("programs/", views.ProgramListApi.as_view(), name="program-list"),
    path("rounds/<id:pk>/open/", views.RoundOpenApi.as_view(), name="round-open"),
    path("rounds/<id:pk>/close/", views.RoundCloseApi.as_view(), name="round-close"),
    path("rounds/<id:pk>/select/", views.RoundSelectApi.as_view(), name="round-select"),
    path("rounds/<id:pk>/ledger/", views.RoundLedgerApi.as_view(), name="round-ledger"),
    path("rounds/<id:pk>/money/", views.RoundMoneyApi.as_view(), name="round-money"),
    path("me/profile/", views.ProfileApi.as_view(), name="profile"),
    path("me/notifications/", views.MyNotificationListApi.as_view(), name="my-notifications"),
    path(
        "applications/<id:pk>/documents/",
        views.ApplicationDocumentCreateApi.as_view(),
        name="application-documents",
    ),
    path(
        "applications/<id:pk>/submit/",
        views.ApplicationSubmitApi.as_view(),
        name="application-submit",
    ),
    path(
        "applications/<id:pk>/withdraw/",
        views.ApplicationWithdrawApi.as_view(),
        name="application-withdraw",
    ),
    path("", include("api.review")),
    path("", include("api.after_decision")),
    path("", include("api.registries")),
    path("", include("api.disbursements")),
    path("", include("api.vouchers")),
    path("", include("api.recoveries")),
    path("", include("api.reports")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The page and its script apart, its style in a file: no inline code for the CSP to refuse.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="docs",
    ),
    # ReDoc styles its page from its script at run time and parses the schema in a worker:
    # this page alone allows inline styles and a worker from a blob (no inline script).
    path(
        "redoc/",
        csp_update(
            {"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"], "img-src": ["data:"]}
        )(SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html")),
        name="redoc",
    ),
    *router.urls,
]
