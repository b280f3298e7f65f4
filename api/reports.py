"""The round report for staff: JSON, its districts as CSV, and a chart of them as SVG."""

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import FileDownloadNegotiation
from api.permissions import role_permission
from benefits import reports
from benefits.models import Application
from core.roles import Role

CanReadReports = role_permission(Role.CASEWORKER, Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR)


def _counts(name: str, fields: tuple[str, ...]) -> type[serializers.Serializer]:
    """A serializer of named integers, so that the schema lists every key clients read."""
    return type(name, (serializers.Serializer,), {f: serializers.IntegerField() for f in fields})


StatusCountsSerializer = _counts("ApplicationStatusCounts", tuple(Application.Status.values))
DuplicateCountsSerializer = _counts("DuplicateCounts", reports.DUPLICATE_REGISTRIES)
AmountsSerializer = _counts(
    "ReportAmounts",
    (
        "budget",
        "committed",
        "paid",
        "failed",
        "lapsed",
        "recovered",
        "to_recover",
        "available",
    ),
)


class ApplicationCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = StatusCountsSerializer()


class DistrictReportSerializer(serializers.Serializer):
    district = serializers.CharField()
    district_name = serializers.CharField()
    applications = serializers.IntegerField()
    approved = serializers.IntegerField()
    selected = serializers.IntegerField()
    paid = serializers.IntegerField()
    paid_amount = serializers.IntegerField()
    approval_rate = serializers.FloatField(allow_null=True)


class RoundReportSerializer(serializers.Serializer):
    round = serializers.IntegerField()
    program = serializers.CharField()
    as_of = serializers.CharField(help_text="ISO 8601 in Seoul time (+09:00).")
    applications = ApplicationCountsSerializer()
    approval_rate = serializers.FloatField(
        allow_null=True,
        help_text="Approved (selected, waitlisted and paid included) / decided; "
        "null while nothing is decided.",
    )
    districts = DistrictReportSerializer(many=True)
    duplicates = DuplicateCountsSerializer()
    amounts = AmountsSerializer()


class ReportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "csv"], default="json")


@extend_schema_view(
    get=extend_schema(summary="Read a round's report (JSON, or CSV by district)"),
)
class RoundReportApi(APIView):
    permission_classes = [CanReadReports]
    # `?format=` names the report's form here, not a DRF renderer.
    content_negotiation_class = FileDownloadNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], required=False)],
        responses={
            (200, "application/json"): RoundReportSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="One line per district (UTF-8)."
            ),
        },
    )
    def get(self, request, pk: int):
        query = ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        round_ = reports.round_for_report(pk=pk)
        if query.validated_data["format"] == "csv":
            districts = reports.round_report_districts(round_=round_)
            response = HttpResponse(
                reports.report_districts_csv(districts), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="round-{round_.pk}-districts.csv"'
            )
            return response
        return Response(RoundReportSerializer(reports.round_report(round_=round_)).data)


@extend_schema_view(
    get=extend_schema(summary="Chart a round's applications and recipients by district (SVG)"),
)
class RoundReportChartApi(APIView):
    permission_classes = [CanReadReports]
    content_negotiation_class = FileDownloadNegotiation

    @extend_schema(
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Applications and recipients by district, highest recipient "
                "rate first.",
            )
        },
    )
    def get(self, request, pk: int):
        round_ = reports.round_for_report(pk=pk)
        svg = reports.round_report_chart(round_=round_)
        response = HttpResponse(svg, content_type="image/svg+xml")
        response["Content-Disposition"] = f'inline; filename="round-{round_.pk}-districts.svg"'
        # A picture: nothing in it may run or load, even opened on its own.
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response


urlpatterns = [
    path("reports/rounds/<id:pk>/", RoundReportApi.as_view(), name="report-round"),
    path(
        "reports/rounds/<id:pk>/chart.svg",
        RoundReportChartApi.as_view(),
        name="report-round-chart",
    ),
]
