"""The caseworker's review queue, the full application detail, and the decisions."""

from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.http import content_disposition_header
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api import examples
from api.errors import FileDownloadNegotiation
from api.permissions import IsCaseworker, role_permission
from api.serializers import (
    AppealSerializer,
    DocumentSerializer,
    DocumentsRequestSerializer,
    ReasonSerializer,
    latest_appeal,
)
from api.views import MAX_ID
from benefits import document_services, selectors, services
from benefits.models import Application
from core.audit import audit_history
from core.districts import DISTRICT_CHOICES
from core.roles import Role
from eligibility import rules

CanReadReviews = role_permission(Role.CASEWORKER, Role.AUDITOR)


class ApplicantSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    legal_name = serializers.CharField()
    rrn = serializers.CharField(source="rrn_masked")
    birth_date = serializers.DateField()
    district = serializers.CharField()
    district_name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()
    bank_code = serializers.CharField()
    account_number = serializers.CharField(source="account_number_masked")
    account_holder = serializers.CharField()
    account_changed_at = serializers.DateTimeField(allow_null=True)


class RuleResultSerializer(serializers.Serializer):
    rule = serializers.CharField()
    outcome = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    message_ko = serializers.CharField(required=False)
    evidence = serializers.DictField(required=False)


class MatchRecordSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="the match id to resolve it by")
    record = serializers.DictField()
    resolution = serializers.CharField(allow_null=True)


class DuplicateSerializer(serializers.Serializer):
    registry = serializers.CharField()
    action = serializers.CharField()
    detail = serializers.CharField()
    records = serializers.SerializerMethodField()

    @extend_schema_field(MatchRecordSerializer(many=True))
    def get_records(self, match) -> list[dict]:
        """Each record the match found, with the id to resolve it by and its resolution."""
        resolutions = self.context.get("resolutions", {})
        registry = match["registry"]
        records = []
        for record in rules.match_records(registry, match.get("evidence") or {}):
            match_id = rules.match_id(registry, record)
            records.append(
                {"id": match_id, "record": record, "resolution": resolutions.get(match_id)}
            )
        return records


class ScreeningSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    outcome = serializers.CharField()
    ruleset_version = serializers.CharField()
    rules = RuleResultSerializer(many=True, source="rule_results")
    duplicates = DuplicateSerializer(many=True, source="duplicate_matches")
    snapshot_ids = serializers.DictField()
    created_at = serializers.DateTimeField()


class FlagSerializer(serializers.Serializer):
    kind = serializers.CharField()
    summary = serializers.CharField()
    causes = serializers.SerializerMethodField()
    raised_at = serializers.DateTimeField()

    @extend_schema_field(RuleResultSerializer(many=True))
    def get_causes(self, flag) -> list[dict]:
        return [rules.rendered_rule(cause) for cause in flag.causes]


class MatchResolutionSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    registry = serializers.CharField()
    record = serializers.DictField()
    resolution = serializers.CharField()
    reason = serializers.CharField()
    resolved_by = serializers.CharField(source="resolved_by.username")
    resolved_at = serializers.DateTimeField()

    def get_id(self, resolution) -> str:
        return f"{resolution.registry}.{resolution.record_key}"


class RecoverySummarySerializer(serializers.Serializer):
    """The recovery of a paid recipient whose training ended early (GET /recoveries/{id}/)."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    amount = serializers.IntegerField()
    repaid = serializers.IntegerField()
    outstanding = serializers.IntegerField()
    ended_on = serializers.DateField()
    due_on = serializers.DateField()


class HistorySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    action = serializers.CharField()
    actor = serializers.CharField(source="actor.username", default=None, allow_null=True)
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    reason = serializers.CharField()


class ReviewListSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    round = serializers.IntegerField(source="round_id")
    program = serializers.CharField(source="round.program.code")
    status = serializers.CharField()
    income_category = serializers.CharField()
    applicant = serializers.SerializerMethodField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    screening_outcome = serializers.SerializerMethodField()
    flags = serializers.SerializerMethodField()
    appeal_deadline = serializers.SerializerMethodField()
    appeal_days_left = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_appeal_deadline(self, obj) -> str | None:
        appeal = selectors.open_appeal(obj)
        return appeal.deadline.isoformat() if appeal else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_appeal_days_left(self, obj) -> int | None:
        """Days left to decide an open appeal; negative once the deadline has passed."""
        appeal = selectors.open_appeal(obj)
        return (appeal.deadline - timezone.localdate()).days if appeal else None

    @extend_schema_field(serializers.DictField())
    def get_applicant(self, obj) -> dict:
        a = obj.applicant
        return {
            "id": a.pk,
            "legal_name": a.legal_name,
            "district": a.district,
            "district_name": a.district_name,
        }

    def get_screening_outcome(self, obj) -> str | None:
        run = selectors.current_screening(obj)
        return run.outcome if run else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_flags(self, obj) -> list[str]:
        return selectors.review_flags(obj)


class ReviewDetailSerializer(ReviewListSerializer):
    applicant = ApplicantSummarySerializer()
    training = serializers.SerializerMethodField()
    documents = DocumentSerializer(many=True)
    decision_reason = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    screening = serializers.SerializerMethodField()
    appeal = serializers.SerializerMethodField()
    open_flags = serializers.SerializerMethodField()
    match_resolutions = MatchResolutionSerializer(many=True)
    recovery = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()

    @extend_schema_field(RecoverySummarySerializer(allow_null=True))
    def get_recovery(self, obj) -> dict | None:
        recovery = selectors.application_recovery(obj)
        return RecoverySummarySerializer(recovery).data if recovery else None

    @extend_schema_field(AppealSerializer(allow_null=True))
    def get_appeal(self, obj) -> dict | None:
        appeal = latest_appeal(obj)
        return AppealSerializer(appeal).data if appeal else None

    @extend_schema_field(FlagSerializer(many=True))
    def get_open_flags(self, obj) -> list[dict]:
        return FlagSerializer(selectors.open_flags(obj), many=True).data

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_training(self, obj) -> dict | None:
        from api.serializers import ApplicationSerializer

        return ApplicationSerializer().get_training(obj)

    @extend_schema_field(ScreeningSerializer(allow_null=True))
    def get_screening(self, obj) -> dict | None:
        run = selectors.current_screening(obj)
        resolutions = {
            f"{r.registry}.{r.record_key}": r.resolution for r in obj.match_resolutions.all()
        }
        context = {"resolutions": resolutions}
        return ScreeningSerializer(run, context=context).data if run else None

    @extend_schema_field(HistorySerializer(many=True))
    def get_history(self, obj) -> list:
        return HistorySerializer(audit_history(obj), many=True).data


class ReviewFilter(filters.FilterSet):
    round = filters.NumberFilter(field_name="round_id", min_value=1, max_value=MAX_ID)
    status = filters.MultipleChoiceFilter(choices=Application.Status.choices)
    district = filters.ChoiceFilter(field_name="applicant__district", choices=DISTRICT_CHOICES)
    flag = filters.ChoiceFilter(
        choices=[(f, f) for f in selectors.REVIEW_FLAGS], method="filter_flag"
    )

    class Meta:
        model = Application
        fields = ["round", "status", "district", "flag"]

    def filter_flag(self, queryset, name, value):
        return selectors.filter_by_review_flag(queryset, value)


@extend_schema_view(
    get=extend_schema(
        summary="The review queue, oldest submission first", examples=examples.REVIEW_QUEUE
    ),
)
class ReviewListApi(generics.ListAPIView):
    """The queue: oldest submission first."""

    permission_classes = [CanReadReviews]
    serializer_class = ReviewListSerializer
    filterset_class = ReviewFilter

    def get_queryset(self):
        return selectors.application_list_for_reviewer()


@extend_schema_view(
    get=extend_schema(
        summary="Read an application in full: screening, duplicates, documents, history",
        examples=examples.REVIEW_DETAIL,
    ),
)
class ReviewDetailApi(APIView):
    permission_classes = [CanReadReviews]

    @extend_schema(responses={200: ReviewDetailSerializer})
    def get(self, request, pk: int):
        application = selectors.application_get_for_reviewer(pk=pk)
        return Response(ReviewDetailSerializer(application).data)


class _DecisionApi(APIView):
    permission_classes = [IsCaseworker]
    service = None

    @extend_schema(request=ReasonSerializer, responses={200: ReviewDetailSerializer})
    def post(self, request, pk: int):
        application = selectors.application_get_for_reviewer(pk=pk)
        data = ReasonSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        self.service(
            application=application,
            actor=request.user,
            reason=data.validated_data.get("reason", ""),
        )
        application = selectors.application_get_for_reviewer(pk=pk)
        return Response(ReviewDetailSerializer(application).data)


@extend_schema_view(
    post=extend_schema(
        summary="Approve an application under review", examples=examples.REVIEW_APPROVE
    ),
)
class ReviewApproveApi(_DecisionApi):
    service = staticmethod(services.application_approve)


@extend_schema_view(
    post=extend_schema(
        summary="Reject an application, with the reason the citizen reads",
        examples=examples.REVIEW_REJECT,
    ),
)
class ReviewRejectApi(_DecisionApi):
    service = staticmethod(services.application_reject)


@extend_schema_view(
    post=extend_schema(
        summary="Ask the citizen for documents, saying why and which",
        examples=examples.REVIEW_REQUEST_DOCUMENTS,
    ),
)
class ReviewRequestDocumentsApi(APIView):
    """Ask the citizen for documents: a reason, and optionally the kinds still needed."""

    permission_classes = [IsCaseworker]

    @extend_schema(request=DocumentsRequestSerializer, responses={200: ReviewDetailSerializer})
    def post(self, request, pk: int):
        application = selectors.application_get_for_reviewer(pk=pk)
        data = DocumentsRequestSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        services.application_request_documents(
            application=application,
            actor=request.user,
            reason=data.validated_data.get("reason", ""),
            documents=data.validated_data.get("documents", []),
        )
        application = selectors.application_get_for_reviewer(pk=pk)
        return Response(ReviewDetailSerializer(application).data)


@extend_schema_view(
    get=extend_schema(summary="Download a document the citizen uploaded (audited)"),
)
class ReviewDocumentApi(APIView):
    """One uploaded document's content, decrypted for the reviewer; every read is audited."""

    permission_classes = [CanReadReviews]
    content_negotiation_class = FileDownloadNegotiation

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    def get(self, request, pk: int, document_id: int):
        document, chunks = document_services.document_open(
            application=selectors.application_get_for_reviewer(pk=pk),
            document_id=document_id,
            actor=request.user,
        )
        response = StreamingHttpResponse(chunks, content_type=document.content_type)
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=document.original_name
        )
        response["Content-Length"] = str(document.size)
        response["X-Content-SHA256"] = document.sha256
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_view(
    post=extend_schema(summary="Reveal the applicant's RRN (audited, reason required)"),
)
class ReviewRevealRrnApi(APIView):
    """Show the full RRN, for checking identity against a document; every use is audited."""

    permission_classes = [IsCaseworker]

    @extend_schema(
        request=ReasonSerializer,
        responses={200: inline_serializer("RevealedRrn", {"rrn": serializers.CharField()})},
    )
    def post(self, request, pk: int):
        application = selectors.application_get_for_reviewer(pk=pk)
        data = ReasonSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        rrn = services.applicant_rrn_reveal(
            applicant=application.applicant,
            actor=request.user,
            reason=data.validated_data.get("reason", ""),
        )
        return Response({"rrn": rrn}, headers={"Cache-Control": "no-store"})


urlpatterns = [
    path("review/applications/", ReviewListApi.as_view(), name="review-list"),
    path("review/applications/<id:pk>/", ReviewDetailApi.as_view(), name="review-detail"),
    path("review/applications/<id:pk>/approve/", ReviewApproveApi.as_view(), name="review-approve"),
    path("review/applications/<id:pk>/reject/", ReviewRejectApi.as_view(), name="review-reject"),
    path(
        "review/applications/<id:pk>/documents/<id:document_id>/",
        ReviewDocumentApi.as_view(),
        name="review-document",
    ),
    path(
        "review/applications/<id:pk>/reveal-rrn/",
        ReviewRevealRrnApi.as_view(),
        name="review-reveal-rrn",
    ),
    path(
        "review/applications/<id:pk>/request-documents/",
        ReviewRequestDocumentsApi.as_view(),
        name="review-request-documents",
    ),
]
