"""Finance's disbursement batches: create, follow, approve (by another user), export, reconcile."""

from django.http import StreamingHttpResponse
from django.urls import path
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import FileDownloadNegotiation, field_error
from api.idempotency import idempotent
from api.parsers import MultiPartParser
from api.permissions import role_permission
from api.serializers import LedgerSerializer, ReasonSerializer, StrictSerializer
from api.views import IDEMPOTENCY_PARAMETER, MAX_ID
from benefits.models import Round
from core.roles import Role
from payments import audit as audits
from payments import exports, selectors, services
from payments.imports import bank_results_submit
from payments.models import BankResultImport, DisbursementBatch, Payment

IsFinance = role_permission(Role.FINANCE)
CanReadBatches = role_permission(Role.FINANCE, Role.AUDITOR)


class BankFileSerializer(serializers.Serializer):
    format = serializers.CharField()
    downloaded_at = serializers.DateTimeField(allow_null=True)
    downloaded_by = serializers.CharField(
        source="downloaded_by.username", default=None, allow_null=True
    )
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    payments_count = serializers.IntegerField()
    total_amount = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    round = serializers.IntegerField(source="round_id")
    kind = serializers.ChoiceField(choices=DisbursementBatch.Kind.choices)
    period_starts_on = serializers.DateField(allow_null=True)
    period_ends_on = serializers.DateField(allow_null=True)
    status = serializers.ChoiceField(choices=DisbursementBatch.Status.choices)
    build_status = serializers.ChoiceField(choices=DisbursementBatch.BuildStatus.choices)
    build_expected = serializers.IntegerField()
    payments_count = serializers.SerializerMethodField()
    total_amount = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    prepared_by = serializers.CharField(source="prepared_by.username")
    approved_by = serializers.CharField(
        source="approved_by.username", default=None, allow_null=True
    )
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    reconciled_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)

    def _totals(self, obj) -> dict:
        if not hasattr(obj, "_totals"):
            obj._totals = selectors.batch_counts(obj)
        return obj._totals

    def get_payments_count(self, obj) -> int:
        return self._totals(obj)["payments_count"]

    def get_total_amount(self, obj) -> int:
        return self._totals(obj)["total_amount"]

    def get_counts(self, obj) -> dict[str, int]:
        return self._totals(obj)["counts"]


class AuditSummarySerializer(serializers.Serializer):
    shared_account = serializers.IntegerField()
    account_changed = serializers.IntegerField()
    amount_anomaly = serializers.IntegerField()
    application_changed = serializers.IntegerField()


class BatchDetailSerializer(BatchSerializer):
    ledger = serializers.SerializerMethodField()
    audit = serializers.SerializerMethodField()
    files = BankFileSerializer(many=True)

    @extend_schema_field(LedgerSerializer)
    def get_ledger(self, obj) -> dict:
        return selectors.round_budget_ledger(obj.round).as_dict()

    @extend_schema_field(AuditSummarySerializer)
    def get_audit(self, obj) -> dict:
        return audits.batch_audit_summary(obj)


class PaymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField()
    application = serializers.IntegerField(source="application_id", allow_null=True)
    applicant = serializers.IntegerField(source="application.applicant_id", allow_null=True)
    provider = serializers.IntegerField(source="provider_id", allow_null=True)
    legal_name = serializers.CharField(source="application.applicant.legal_name", allow_null=True)
    status = serializers.ChoiceField(choices=Payment.Status.choices)
    amount = serializers.IntegerField()
    bank_code = serializers.CharField()
    account_number = serializers.CharField(source="account_number_masked")
    account_holder = serializers.CharField()
    flags = serializers.SerializerMethodField()
    hold_reason = serializers.CharField()
    failure_reason = serializers.CharField()
    reissue_of = serializers.IntegerField(source="reissue_of_id", allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)

    def get_flags(self, obj) -> list[str]:
        return audits.payment_flags(obj)


class BatchCreateSerializer(StrictSerializer):
    round = serializers.PrimaryKeyRelatedField(queryset=Round.objects.all())
    # A settlement pays voucher providers for the redemptions of a period.
    kind = serializers.ChoiceField(
        choices=DisbursementBatch.Kind.choices, default=DisbursementBatch.Kind.BENEFIT
    )
    period_starts_on = serializers.DateField(required=False)
    period_ends_on = serializers.DateField(required=False)

    def validate(self, attrs):
        if attrs["kind"] == DisbursementBatch.Kind.SETTLEMENT:
            missing = {
                name: serializers.ErrorDetail("A settlement needs its period.", code="required")
                for name in ("period_starts_on", "period_ends_on")
                if name not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


class ResultUploadSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True, max_length=255)


class ResultImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class ResultImportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    batch = serializers.IntegerField(source="batch_id")
    batch_status = serializers.CharField(source="batch.status")
    format = serializers.CharField()
    sha256 = serializers.CharField()
    lines = serializers.IntegerField(source="summary.lines")
    paid = serializers.IntegerField(source="summary.paid")
    failed = serializers.IntegerField(source="summary.failed")
    pending = serializers.IntegerField(source="summary.pending")
    unchanged = serializers.IntegerField(source="summary.unchanged")
    created_at = serializers.DateTimeField()
    # Applied in chunks by the workers when tasks do not run eagerly: the counts above
    # grow as chunks commit, and are final once the status is succeeded.
    status = serializers.ChoiceField(choices=BankResultImport.Status.choices)
    lines_done = serializers.IntegerField(help_text="Lines applied so far.")
    errors = ResultImportErrorSerializer(many=True, help_text="Why a failed import failed.")
    finished_at = serializers.DateTimeField(allow_null=True)


class BatchFilter(filters.FilterSet):
    round = filters.NumberFilter(field_name="round_id", min_value=1, max_value=MAX_ID)
    status = filters.MultipleChoiceFilter(choices=DisbursementBatch.Status.choices)

    class Meta:
        model = DisbursementBatch
        fields = ["round", "status"]


@extend_schema_view(
    get=extend_schema(summary="List disbursement and settlement batches"),
    post=extend_schema(summary="Prepare a batch: a round's payments, or a providers' settlement"),
)
class DisbursementListCreateApi(generics.ListAPIView):
    serializer_class = BatchSerializer
    filterset_class = BatchFilter

    def get_permissions(self):
        return [IsFinance() if self.request.method == "POST" else CanReadBatches()]

    def get_queryset(self):
        return selectors.batch_list_for_finance()

    @extend_schema(
        request=BatchCreateSerializer,
        responses={201: BatchDetailSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request):
        data = BatchCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch = services.batch_open(actor=request.user, **data.validated_data)
        # With eager Celery the payments are gathered already; otherwise poll build_status.
        batch = selectors.batch_get(pk=batch.pk)
        return Response(BatchDetailSerializer(batch).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read a batch: totals, counts, ledger and audit"),
)
class DisbursementDetailApi(APIView):
    permission_classes = [CanReadBatches]

    @extend_schema(responses=BatchDetailSerializer)
    def get(self, request, pk: int):
        return Response(BatchDetailSerializer(selectors.batch_get(pk=pk)).data)


class _BatchTransitionApi(APIView):
    permission_classes = [IsFinance]
    service = None

    @extend_schema(request=ReasonSerializer, responses={200: BatchDetailSerializer})
    def post(self, request, pk: int):
        batch = selectors.batch_get(pk=pk)
        data = ReasonSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        self.perform(batch, request.user, data.validated_data.get("reason", ""))
        return Response(BatchDetailSerializer(selectors.batch_get(pk=pk)).data)


@extend_schema_view(
    post=extend_schema(summary="Hand a batch to another finance user for approval"),
)
class DisbursementSubmitApi(_BatchTransitionApi):
    def perform(self, batch, actor, reason):
        services.batch_submit(batch=batch, actor=actor)


@extend_schema_view(
    post=extend_schema(summary="Approve a batch (not by the user who prepared it)"),
)
class DisbursementApproveApi(_BatchTransitionApi):
    def perform(self, batch, actor, reason):
        services.batch_approve(batch=batch, actor=actor, reason=reason)


@extend_schema_view(
    post=extend_schema(summary="Mark a batch sent to the bank, or credit a voucher round"),
)
class DisbursementDisburseApi(_BatchTransitionApi):
    def perform(self, batch, actor, reason):
        services.batch_disburse(batch=batch, actor=actor)


@extend_schema_view(
    post=extend_schema(summary="Cancel a batch before it is sent"),
)
class DisbursementCancelApi(_BatchTransitionApi):
    def perform(self, batch, actor, reason):
        services.batch_cancel(batch=batch, actor=actor, reason=reason)


@extend_schema_view(
    post=extend_schema(summary="Close a reconciled batch"),
)
class DisbursementCloseApi(_BatchTransitionApi):
    def perform(self, batch, actor, reason):
        services.batch_close(batch=batch, actor=actor)


@extend_schema_view(
    get=extend_schema(summary="Download the batch's bank file (CSV or pain.001)"),
)
class DisbursementExportApi(APIView):
    permission_classes = [IsFinance]
    # `?format=` names the bank file here, not a DRF renderer.
    content_negotiation_class = FileDownloadNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "pain001"], required=True),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="Bank CSV"),
            (200, "application/xml"): OpenApiResponse(
                OpenApiTypes.BINARY, description="ISO 20022 pain.001.001.09"
            ),
            202: OpenApiResponse(description="The file is being generated; retry shortly."),
        },
    )
    def get(self, request, pk: int):
        found = exports.bank_file_for_download(
            batch=selectors.batch_get(pk=pk),
            fmt=request.query_params.get("format", ""),
            actor=request.user,
        )
        if found is None:
            response = Response(
                {"status": "generating", "detail": "The bank file is being generated."},
                status=status.HTTP_202_ACCEPTED,
            )
            response["Retry-After"] = "5"
            return response
        bank_file, chunks = found
        response = StreamingHttpResponse(
            chunks, content_type=exports.CONTENT_TYPES[bank_file.format]
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.bank_file_name(bank_file)}"'
        )
        response["Content-Length"] = str(bank_file.size)
        response["X-Content-SHA256"] = bank_file.sha256
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_view(
    post=extend_schema(summary="Upload the bank's result file and reconcile the batch"),
)
class DisbursementResultsApi(APIView):
    permission_classes = [IsFinance]
    parser_classes = [MultiPartParser]  # a file travels in multipart/form-data alone

    @extend_schema(
        request=ResultUploadSerializer,
        responses={200: ResultImportSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request, pk: int):
        batch = selectors.batch_get(pk=pk)
        data = ResultUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > 200 * 1024 * 1024:
            raise field_error("file", "A result file is at most 200 MB.", "file_too_large")
        record = bank_results_submit(batch=batch, actor=request.user, upload=upload)
        return Response(ResultImportSerializer(record).data)


class PaymentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Payment.Status.choices)
    flag = filters.ChoiceFilter(choices=[(f, f) for f in audits.AUDIT_FLAGS], method="by_flag")

    class Meta:
        model = Payment
        fields = ["status", "flag"]

    def by_flag(self, queryset, name, value):
        return queryset.filter(**{value: True})


@extend_schema_view(
    get=extend_schema(summary="List a batch's payments"),
)
class DisbursementPaymentListApi(generics.ListAPIView):
    """The payments of a batch with their pre-release audit flags (`?flag=` to narrow)."""

    permission_classes = [CanReadBatches]
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Payment.objects.none()
        return audits.payments_with_flags(selectors.batch_get(pk=self.kwargs["pk"]))


@extend_schema_view(
    get=extend_schema(summary="The pre-release audit: payments to look at before approval"),
)
class DisbursementAuditApi(generics.ListAPIView):
    """The pre-release audit: pending payments with at least one reason to hold them out."""

    permission_classes = [CanReadBatches]
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Payment.objects.none()
        return audits.batch_audit(selectors.batch_get(pk=self.kwargs["pk"]))


class PaymentHoldSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000)


@extend_schema_view(
    post=extend_schema(summary="Hold one payment out of a batch, with a reason"),
)
class DisbursementPaymentHoldApi(APIView):
    permission_classes = [IsFinance]

    @extend_schema(request=PaymentHoldSerializer, responses={200: PaymentSerializer})
    def post(self, request, pk: int, payment_pk: int):
        batch = selectors.batch_get(pk=pk)
        data = PaymentHoldSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = services.payment_hold(
            batch=batch,
            payment_id=payment_pk,
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        payment = audits.payments_with_flags(batch).get(pk=payment.pk)
        return Response(PaymentSerializer(payment).data)


urlpatterns = [
    path("disbursements/", DisbursementListCreateApi.as_view(), name="disbursement-list"),
    path("disbursements/<id:pk>/", DisbursementDetailApi.as_view(), name="disbursement-detail"),
    path(
        "disbursements/<id:pk>/submit/", DisbursementSubmitApi.as_view(), name="disbursement-submit"
    ),
    path(
        "disbursements/<id:pk>/approve/",
        DisbursementApproveApi.as_view(),
        name="disbursement-approve",
    ),
    path(
        "disbursements/<id:pk>/disburse/",
        DisbursementDisburseApi.as_view(),
        name="disbursement-disburse",
    ),
    path(
        "disbursements/<id:pk>/cancel/", DisbursementCancelApi.as_view(), name="disbursement-cancel"
    ),
    path("disbursements/<id:pk>/close/", DisbursementCloseApi.as_view(), name="disbursement-close"),
    path(
        "disbursements/<id:pk>/export/", DisbursementExportApi.as_view(), name="disbursement-export"
    ),
    path(
        "disbursements/<id:pk>/results/",
        DisbursementResultsApi.as_view(),
        name="disbursement-results",
    ),
    path("disbursements/<id:pk>/audit/", DisbursementAuditApi.as_view(), name="disbursement-audit"),
    path(
        "disbursements/<id:pk>/payments/",
        DisbursementPaymentListApi.as_view(),
        name="disbursement-payments",
    ),
    path(
        "disbursements/<id:pk>/payments/<id:payment_pk>/hold/",
        DisbursementPaymentHoldApi.as_view(),
        name="disbursement-payment-hold",
    ),
]
