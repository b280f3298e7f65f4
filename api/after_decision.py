"""After the decision: the citizen's appeal, its decision, revoking an approval, clearing a
flag, resolving a duplicate match and recording a training that ended early."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.parsers import JSONParser, MultiPartParser
from api.permissions import IsCaseworker, IsCitizen
from api.review import ReviewDetailSerializer
from api.serializers import ApplicationSerializer, ReasonSerializer, StrictSerializer
from api.views import IDEMPOTENCY_PARAMETER
from benefits import after_decision, selectors, services
from benefits.models import Appeal, ApplicationFlag
from benefits.training_end import application_training_end
from eligibility.models import MatchResolution
from eligibility.resolutions import match_resolve


class AppealRequestSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=4000)


class AppealDecisionSerializer(StrictSerializer):
    outcome = serializers.ChoiceField(choices=Appeal.Outcome.choices)
    reason = serializers.CharField(max_length=4000)


class ClearFlagSerializer(StrictSerializer):
    flag = serializers.ChoiceField(choices=ApplicationFlag.Kind.choices)
    reason = serializers.CharField(max_length=4000)


class RevokeSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=4000)


class TrainingEndSerializer(StrictSerializer):
    ended_on = serializers.DateField(help_text="the last day the recipient attended")
    reason = serializers.CharField(max_length=4000)
    evidence = serializers.FileField(
        required=False,
        allow_empty_file=False,
        max_length=255,
        help_text="the institution's notice (PDF, PNG or JPEG), sent as multipart/form-data",
    )


class MatchResolveSerializer(StrictSerializer):
    resolution = serializers.ChoiceField(choices=MatchResolution.Resolution.choices)
    reason = serializers.CharField(max_length=4000)


_REFUSED = {
    403: OpenApiResponse(description="not this role (or the caseworker who rejected)"),
    404: OpenApiResponse(description="no such application (or match)"),
    409: OpenApiResponse(description="the application is not in a state that allows it"),
}


class ApplicationAppealApi(APIView):
    """Object to a rejection within the round's appeal window (행정기본법 제36조).

    Documents supporting the appeal go through the usual upload while it is `appealed`.
    """

    permission_classes = [IsCitizen]

    @extend_schema(
        summary="Appeal the rejection of my application (이의신청)",
        request=AppealRequestSerializer,
        responses={200: ApplicationSerializer, **_REFUSED},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request, pk: int):
        data = AppealRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        application = after_decision.application_appeal_file(
            applicant=services.applicant_for_user(request.user),
            pk=pk,
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        application = selectors.application_with_documents(application)
        return Response(ApplicationSerializer(application).data)


class _ReviewActionApi(APIView):
    """A caseworker's action on one application; answers with the review detail."""

    permission_classes = [IsCaseworker]
    input_serializer: type[serializers.Serializer] = ReasonSerializer

    def perform(self, application, actor, data):
        raise NotImplementedError

    def post(self, request, pk: int, **kwargs):
        application = selectors.application_get_for_reviewer(pk=pk)
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.perform(application, request.user, dict(data.validated_data, **kwargs))
        application = selectors.application_get_for_reviewer(pk=pk)
        return Response(ReviewDetailSerializer(application).data)


class ReviewAppealDecisionApi(_ReviewActionApi):
    """Decide an appeal: `overturned` approves, `upheld` rejects for good. Another
    caseworker than the one who rejected decides (403 `same_reviewer`)."""

    input_serializer = AppealDecisionSerializer

    @extend_schema(
        summary="Decide an appeal: overturned approves, upheld rejects for good",
        request=AppealDecisionSerializer,
        responses={200: ReviewDetailSerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def perform(self, application, actor, data):
        after_decision.application_appeal_decide(
            application=application, actor=actor, outcome=data["outcome"], reason=data["reason"]
        )


class ReviewRevokeApi(_ReviewActionApi):
    """Revoke an approval (approved, selected or waitlisted) before any payment exists."""

    input_serializer = RevokeSerializer

    @extend_schema(
        summary="Revoke an approval before any payment for it exists",
        request=RevokeSerializer,
        responses={200: ReviewDetailSerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def perform(self, application, actor, data):
        after_decision.application_revoke(
            application=application, actor=actor, reason=data["reason"]
        )


class ReviewClearFlagApi(_ReviewActionApi):
    """Clear an open flag after looking, with the reason: its payment may be made."""

    input_serializer = ClearFlagSerializer

    @extend_schema(
        summary="Clear an open flag, with the reason: its payment may go in a batch",
        request=ClearFlagSerializer,
        responses={200: ReviewDetailSerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def perform(self, application, actor, data):
        after_decision.application_flag_clear(
            application=application, actor=actor, flag=data["flag"], reason=data["reason"]
        )


class ReviewMatchResolveApi(_ReviewActionApi):
    """Judge one matched record of the current screening; later screenings respect it."""

    input_serializer = MatchResolveSerializer

    @extend_schema(
        summary="Resolve a duplicate match; later screenings respect it",
        request=MatchResolveSerializer,
        responses={200: ReviewDetailSerializer, **_REFUSED},
    )
    def post(self, request, pk: int, match_id: str):
        return super().post(request, pk, match_id=match_id)

    def perform(self, application, actor, data):
        match_resolve(
            application=application,
            actor=actor,
            match_id=data["match_id"],
            resolution=data["resolution"],
            reason=data["reason"],
        )


class ReviewTrainingEndedApi(_ReviewActionApi):
    """Record that a scholarship recipient's training ended early (`ended_on`: the last day
    attended). Not yet paid: the approval is revoked. Paid: a recovery opens for what the
    round's rule says (`recovery` in the answer). A payment on its way: 409
    `payment_in_progress`. Vouchers: 409 `voucher_program` (the voucher ledger handles a
    refunded course)."""

    input_serializer = TrainingEndSerializer
    # JSON, or multipart/form-data with the institution's notice as `evidence`.
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        summary="Record a training that ended early: revoke, or open a recovery if paid",
        request=TrainingEndSerializer,
        responses={200: ReviewDetailSerializer, **_REFUSED},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def perform(self, application, actor, data):
        application_training_end(
            application=application,
            actor=actor,
            ended_on=data["ended_on"],
            reason=data["reason"],
            evidence=data.get("evidence"),
        )


urlpatterns = [
    path(
        "applications/<id:pk>/appeal/",
        ApplicationAppealApi.as_view(),
        name="application-appeal",
    ),
    path(
        "review/applications/<id:pk>/appeal-decision/",
        ReviewAppealDecisionApi.as_view(),
        name="review-appeal-decision",
    ),
    path("review/applications/<id:pk>/revoke/", ReviewRevokeApi.as_view(), name="review-revoke"),
    path(
        "review/applications/<id:pk>/clear-flag/",
        ReviewClearFlagApi.as_view(),
        name="review-clear-flag",
    ),
    path(
        "review/applications/<id:pk>/matches/<str:match_id>/resolve/",
        ReviewMatchResolveApi.as_view(),
        name="review-match-resolve",
    ),
    path(
        "review/applications/<id:pk>/training-ended/",
        ReviewTrainingEndedApi.as_view(),
        name="review-training-ended",
    ),
]
