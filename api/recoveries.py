"""Recoveries (환수): what recipients whose training ended early give back. Finance records
repayments and waivers (a waiver approved by another finance user); staff read every case;
a citizen reads her own."""

from django.urls import path
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.permissions import role_permission
from api.serializers import StrictSerializer
from api.views import IDEMPOTENCY_PARAMETER, MAX_ID
from core.roles import Role, user_has_role
from payments import recoveries, selectors
from payments.models import Recovery

IsFinance = role_permission(Role.FINANCE)
CanReadRecoveries = role_permission(Role.CITIZEN, *selectors.RECOVERY_READERS)


class _StaffOnly(serializers.CharField):
    """A staff member's username: shown to staff, null for the citizen."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, default=None, **kwargs)

    def get_attribute(self, instance):
        if not self.root.context.get("staff"):
            return None
        return super().get_attribute(instance)


class RepaymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.IntegerField()
    paid_on = serializers.DateField()
    recorded_at = serializers.DateTimeField()
    recorded_by = _StaffOnly(source="recorded_by.username")


class WaiverSerializer(serializers.Serializer):
    reason = serializers.CharField(source="waiver_reason")
    requested_at = serializers.DateTimeField(source="waiver_requested_at")
    requested_by = _StaffOnly(source="waiver_requested_by.username")
    approved_at = serializers.DateTimeField(source="waiver_approved_at", allow_null=True)
    approved_by = _StaffOnly(source="waiver_approved_by.username")
    amount = serializers.IntegerField(
        source="waived_amount", help_text="KRW waived (0 while the waiver waits for approval)"
    )


class RecoverySerializer(serializers.Serializer):
    """A recovery: the amount, what was repaid, what is still owed and by when."""

    id = serializers.IntegerField()
    application = serializers.IntegerField(source="application_id")
    round = serializers.IntegerField(source="round_id")
    status = serializers.ChoiceField(choices=Recovery.Status.choices)
    amount = serializers.IntegerField(help_text="KRW to recover")
    repaid = serializers.IntegerField(help_text="KRW repaid so far")
    outstanding = serializers.IntegerField(help_text="KRW still owed (0 once repaid or waived)")
    due_on = serializers.DateField()
    ended_on = serializers.DateField(help_text="the last day the recipient attended")
    reason = serializers.CharField()
    rule = serializers.CharField(help_text="the round's rule: `whole` or `pro_rata`")
    paid_amount = serializers.IntegerField(help_text="KRW the recipient was paid")
    training_days = serializers.IntegerField()
    days_not_attended = serializers.IntegerField()
    repayments = RepaymentSerializer(many=True)
    waiver = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    created_by = _StaffOnly(source="created_by.username")
    closed_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(WaiverSerializer(allow_null=True))
    def get_waiver(self, obj) -> dict | None:
        if obj.waiver_requested_by_id is None:
            return None
        return WaiverSerializer(obj, context=self.context).data


def _context(request) -> dict:
    return {"staff": user_has_role(request.user, *selectors.RECOVERY_READERS)}


class RepaymentRequestSerializer(StrictSerializer):
    amount = serializers.IntegerField(min_value=1, max_value=10**15)
    paid_on = serializers.DateField()


class WaiverRequestSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=4000)


class RecoveryFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Recovery.Status.choices)
    round = filters.NumberFilter(field_name="round_id", min_value=1, max_value=MAX_ID)
    application = filters.NumberFilter(field_name="application_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Recovery
        fields = ["status", "round", "application"]


_REFUSED = {
    403: OpenApiResponse(
        description="not finance (or, approving a waiver, its requester: `maker_checker`)"
    ),
    404: OpenApiResponse(description="no such recovery"),
    409: OpenApiResponse(
        description="the recovery is repaid or waived already "
        "(`recovery_closed`), a waiver waits (`waiver_pending`) or none was asked for "
        "(`no_waiver_requested`)"
    ),
}


@extend_schema_view(
    get=extend_schema(summary="List recoveries (a citizen: her own), newest first"),
)
class RecoveryListApi(generics.ListAPIView):
    permission_classes = [CanReadRecoveries]
    serializer_class = RecoverySerializer
    filterset_class = RecoveryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Recovery.objects.none()
        return selectors.recovery_list(user=self.request.user)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), **_context(self.request)}


@extend_schema_view(
    get=extend_schema(summary="Read a recovery: amount, repaid, outstanding, due date"),
)
class RecoveryDetailApi(APIView):
    permission_classes = [CanReadRecoveries]

    @extend_schema(responses={200: RecoverySerializer})
    def get(self, request, pk: int):
        recovery = selectors.recovery_get(user=request.user, pk=pk)
        return Response(RecoverySerializer(recovery, context=_context(request)).data)


def _answer(request, pk: int, status_code: int = status.HTTP_200_OK) -> Response:
    recovery = selectors.recovery_get(user=request.user, pk=pk)
    return Response(RecoverySerializer(recovery, context=_context(request)).data, status_code)


class RecoveryRepaymentApi(APIView):
    """Record money the recipient gave back (never more than is owed); the case is
    `repaid` once nothing is."""

    permission_classes = [IsFinance]

    @extend_schema(
        summary="Record a repayment (finance); never more than is still owed",
        request=RepaymentRequestSerializer,
        responses={201: RecoverySerializer, **_REFUSED},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request, pk: int):
        recovery = selectors.recovery_get(user=request.user, pk=pk)
        data = RepaymentRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recoveries.recovery_repayment_record(
            recovery=recovery, actor=request.user, **data.validated_data
        )
        return _answer(request, pk, status.HTTP_201_CREATED)


class RecoveryWaiveApi(APIView):
    """Ask to waive what is still owed, with the reason; another finance user approves."""

    permission_classes = [IsFinance]

    @extend_schema(
        summary="Ask to waive what is still owed, with a reason (finance)",
        request=WaiverRequestSerializer,
        responses={200: RecoverySerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        recovery = selectors.recovery_get(user=request.user, pk=pk)
        data = WaiverRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recoveries.recovery_waiver_request(
            recovery=recovery, actor=request.user, reason=data.validated_data["reason"]
        )
        return _answer(request, pk)


class RecoveryApproveWaiverApi(APIView):
    """Approve a requested waiver: a finance user other than its requester."""

    permission_classes = [IsFinance]

    @extend_schema(
        summary="Approve a waiver (another finance user than its requester)",
        request=None,
        responses={200: RecoverySerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        recovery = selectors.recovery_get(user=request.user, pk=pk)
        recoveries.recovery_waiver_approve(recovery=recovery, actor=request.user)
        return _answer(request, pk)


urlpatterns = [
    path("recoveries/", RecoveryListApi.as_view(), name="recovery-list"),
    path("recoveries/<id:pk>/", RecoveryDetailApi.as_view(), name="recovery-detail"),
    path(
        "recoveries/<id:pk>/repayments/",
        RecoveryRepaymentApi.as_view(),
        name="recovery-repayments",
    ),
    path("recoveries/<id:pk>/waive/", RecoveryWaiveApi.as_view(), name="recovery-waive"),
    path(
        "recoveries/<id:pk>/approve-waiver/",
        RecoveryApproveWaiverApi.as_view(),
        name="recovery-approve-waiver",
    ),
]
