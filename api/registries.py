"""REST views for registry imports: upload a CSV (202 with a job), then poll the job."""

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.parsers import MultiPartParser
from api.permissions import IsProgramManager, role_permission
from api.serializers import StrictSerializer
from api.views import IDEMPOTENCY_PARAMETER
from core.roles import Role
from eligibility.imports import registry_import_create
from eligibility.models import RegistryImportJob, RegistryKind

IsProgramManagerOrAuditor = role_permission(Role.PROGRAM_MANAGER, Role.AUDITOR)


class RegistryImportUploadSerializer(StrictSerializer):
    # An empty file is accepted here so that the job reports it like any other bad file.
    file = serializers.FileField(allow_empty_file=True, max_length=255)


class RegistryImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class RegistryImportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RegistryKind.choices)
    status = serializers.ChoiceField(choices=RegistryImportJob.Status.choices)
    rows_read = serializers.IntegerField()
    rows_rejected = serializers.IntegerField()
    errors = RegistryImportErrorSerializer(many=True)
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


@extend_schema_view(
    post=extend_schema(summary="Import a registry snapshot from CSV (runs in the background)"),
)
class RegistryImportCreateApi(APIView):
    permission_classes = [IsProgramManager]
    parser_classes = [MultiPartParser]  # a file travels in multipart/form-data alone

    @extend_schema(
        operation_id="registry_import_create",
        request=RegistryImportUploadSerializer,
        responses={202: RegistryImportJobSerializer},
        parameters=[
            OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=RegistryKind.values),
            IDEMPOTENCY_PARAMETER,
        ],
    )
    @idempotent
    def post(self, request, kind: str):
        if kind not in RegistryKind.values:
            raise NotFound("Unknown registry.")
        data = RegistryImportUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = registry_import_create(
            kind=kind, uploaded_file=data.validated_data["file"], actor=request.user
        )
        return Response(RegistryImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    get=extend_schema(summary="Follow a registry import"),
)
class RegistryImportDetailApi(APIView):
    permission_classes = [IsProgramManagerOrAuditor]

    @extend_schema(operation_id="registry_import_retrieve", responses=RegistryImportJobSerializer)
    def get(self, request, pk: int):
        job = get_object_or_404(RegistryImportJob, pk=pk)
        return Response(RegistryImportJobSerializer(job).data)


urlpatterns = [
    path(
        "registries/<str:kind>/imports/",
        RegistryImportCreateApi.as_view(),
        name="registry-import-create",
    ),
    path(
        "registries/imports/<id:pk>/",
        RegistryImportDetailApi.as_view(),
        name="registry-import-detail",
    ),
]
