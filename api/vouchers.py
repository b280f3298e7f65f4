"""Vouchers: the citizen's balance and ledger, providers' redemptions and refunds, top-ups."""

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import HEADER, idempotent
from api.permissions import IsCitizen, IsProgramManager, role_permission
from api.serializers import StrictSerializer
from api.views import IDEMPOTENCY_PARAMETER
from benefits.models import Round
from benefits.services import applicant_for_user
from core.roles import Role
from payments import vouchers
from payments.models import VoucherEntry

IsProvider = role_permission(Role.PROVIDER)
MAX_KRW = 10**12


class VoucherEntrySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=VoucherEntry.Kind.choices)
    amount = serializers.IntegerField()
    balance_after = serializers.IntegerField()
    course = serializers.CharField()
    at = serializers.DateTimeField()


class VoucherSerializer(serializers.Serializer):
    code = serializers.CharField()
    round = serializers.IntegerField(source="round_id")
    balance = serializers.IntegerField()
    expires_on = serializers.DateField()
    lapsed = serializers.SerializerMethodField()
    entries = VoucherEntrySerializer(many=True)

    def get_lapsed(self, obj) -> bool:
        return obj.lapsed_at is not None


@extend_schema_view(
    get=extend_schema(summary="Read my voucher: balance, expiry and ledger"),
)
class VoucherMeApi(APIView):
    permission_classes = [IsCitizen]

    @extend_schema(responses={200: VoucherSerializer})
    def get(self, request):
        account = vouchers.voucher_for_citizen(applicant_for_user(request.user))
        if account is None:
            raise NotFound("You have no voucher.")
        return Response(VoucherSerializer(account).data)


class RedemptionRequestSerializer(StrictSerializer):
    voucher_code = serializers.CharField(max_length=40)
    amount = serializers.IntegerField(min_value=1, max_value=MAX_KRW)
    course = serializers.CharField(max_length=200)
    # What is paid for: a course (materials or textbooks alone are refused).
    purpose = serializers.ChoiceField(
        choices=["course", "materials", "textbooks"], default="course"
    )


class RedemptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    voucher_code = serializers.CharField(source="account.code")
    amount = serializers.SerializerMethodField()
    course = serializers.CharField()
    balance_after = serializers.IntegerField()
    completed = serializers.BooleanField()
    at = serializers.DateTimeField()

    def get_amount(self, obj) -> int:
        return -obj.amount


class RefundRequestSerializer(StrictSerializer):
    amount = serializers.IntegerField(min_value=1, max_value=MAX_KRW, required=False)


class RefundSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    redemption = serializers.IntegerField(source="redemption_id")
    amount = serializers.IntegerField()
    balance_after = serializers.IntegerField()
    at = serializers.DateTimeField()


@extend_schema_view(
    post=extend_schema(summary="Charge a course to a voucher"),
)
class RedemptionCreateApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        request=RedemptionRequestSerializer,
        responses={201: RedemptionSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request):
        data = RedemptionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = vouchers.voucher_redeem(
            actor=request.user,
            idempotency_key=request.headers.get(HEADER, "")[:255],
            **data.validated_data,
        )
        return Response(RedemptionSerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    post=extend_schema(summary="Refund part or all of a redemption"),
)
class RedemptionRefundApi(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        request=RefundRequestSerializer,
        responses={201: RefundSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request, pk: int):
        data = RefundRequestSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        entry = vouchers.voucher_refund(
            actor=request.user, redemption_id=pk, amount=data.validated_data.get("amount")
        )
        return Response(RefundSerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    post=extend_schema(summary="Record that the paid course was completed"),
)
class RedemptionCompleteApi(APIView):
    """The provider records that the course a redemption paid for was completed."""

    permission_classes = [IsProvider]

    @extend_schema(request=None, responses={200: RedemptionSerializer})
    def post(self, request, pk: int):
        entry = vouchers.voucher_course_complete(actor=request.user, redemption_id=pk)
        return Response(RedemptionSerializer(entry).data)


class TopUpSerializer(serializers.Serializer):
    eligible = serializers.IntegerField()
    granted = serializers.IntegerField()
    limit = serializers.IntegerField()


@extend_schema_view(
    post=extend_schema(summary="Grant the round's top-up to its excellent users"),
)
class RoundTopUpApi(APIView):
    """Grant the round's excellent-user top-up (spent all, completed a course, no refund)."""

    permission_classes = [IsProgramManager]

    @extend_schema(request=None, responses={200: TopUpSerializer})
    def post(self, request, pk: int):
        round_ = get_object_or_404(Round, pk=pk)
        return Response(vouchers.voucher_top_up(round_=round_, actor=request.user))


urlpatterns = [
    path("me/voucher/", VoucherMeApi.as_view(), name="my-voucher"),
    path("vouchers/redemptions/", RedemptionCreateApi.as_view(), name="voucher-redemptions"),
    path(
        "vouchers/redemptions/<id:pk>/refund/",
        RedemptionRefundApi.as_view(),
        name="voucher-redemption-refund",
    ),
    path(
        "vouchers/redemptions/<id:pk>/complete/",
        RedemptionCompleteApi.as_view(),
        name="voucher-redemption-complete",
    ),
    path("rounds/<id:pk>/voucher-top-up/", RoundTopUpApi.as_view(), name="round-voucher-top-up"),
]
