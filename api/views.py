"""REST views: validate input, call one service, render the result."""

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, mixins, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api import examples
from api import serializers as s
from api.idempotency import KEY_PATTERN as IDEMPOTENCY_KEY_PATTERN
from api.idempotency import idempotent
from api.parsers import JSONParser, MultiPartParser
from api.permissions import IsCitizen, IsProgramManager, role_permission
from benefits import document_services, rounds, selectors, services
from benefits.models import Application, Document, Round
from benefits.selection import round_select
from core.roles import Role

CanReadLedger = role_permission(Role.PROGRAM_MANAGER, Role.FINANCE, Role.AUDITOR)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    description="Retry-safe key: the same key and body replay the first response.",
)


# Programs and rounds.


@extend_schema_view(
    get=extend_schema(summary="List the programs with their open rounds"),
)
class ProgramListApi(generics.ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = s.ProgramSerializer

    def get_queryset(self):
        return selectors.program_list_with_open_rounds()


MAX_ID = 2**63 - 1
# A database id in a URL: digits that fit a 64-bit integer (longer ones are not found).
ID_REGEX = "[0-9]{1,18}"


class RoundFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Round.Status.choices)
    program = filters.CharFilter(
        method="filter_program", max_length=32, help_text="program id or code"
    )
    year = filters.NumberFilter(min_value=2000, max_value=2100)

    class Meta:
        model = Round
        fields = ["status", "program", "year"]

    def filter_program(self, queryset, name, value):
        if value.isdigit():
            return queryset.filter(program_id=min(int(value), MAX_ID))
        return queryset.filter(program__code=value.upper())


@extend_schema_view(
    list=extend_schema(summary="List rounds (filter by status, program, year)"),
    retrieve=extend_schema(summary="Read a round"),
)
class RoundViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [AllowAny]
    serializer_class = s.RoundSerializer
    filterset_class = RoundFilter
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        return selectors.round_list_for_user(user=self.request.user)


class _RoundTransitionApi(APIView):
    permission_classes = [IsProgramManager]
    service = None

    @extend_schema(request=None, responses={200: s.RoundSerializer})
    def post(self, request, pk: int):
        round_ = get_object_or_404(Round, pk=pk)
        round_ = self.service(round_=round_, actor=request.user)
        return Response(s.RoundSerializer(round_).data)


@extend_schema_view(
    post=extend_schema(summary="Open a draft round for applications"),
)
class RoundOpenApi(_RoundTransitionApi):
    service = staticmethod(rounds.round_open)


@extend_schema_view(
    post=extend_schema(summary="Close a round to new applications"),
)
class RoundCloseApi(_RoundTransitionApi):
    service = staticmethod(rounds.round_close)


@extend_schema_view(
    post=extend_schema(summary="Run the selection: fill the seats by priority, then the lottery"),
)
class RoundSelectApi(APIView):
    """Rank the approved applications and fill the capacity; run again for late approvals."""

    permission_classes = [IsProgramManager]

    @extend_schema(request=None, responses={200: s.RoundSelectionSerializer})
    def post(self, request, pk: int):
        round_ = get_object_or_404(Round, pk=pk)
        result = round_select(round_=round_, actor=request.user)
        body = s.RoundSerializer(result.round).data
        body["selection"] = {
            "selected": result.selected,
            "waitlisted": result.waitlisted,
            "seats_left": result.seats_left,
            "seed": result.round.selection_seed,
            "order": "priority_tier, then sha256('<seed>:<application id>') hex, then id",
        }
        return Response(body)


@extend_schema_view(
    post=extend_schema(summary="Change a round's budget or top-up, with a reason"),
)
class RoundMoneyApi(APIView):
    """Change a round's budget (never below what is committed), top-up, or a draft's amount
    and capacity; every change is audited with its reason."""

    permission_classes = [IsProgramManager]

    @extend_schema(request=s.RoundMoneySerializer, responses={200: s.RoundSerializer})
    def post(self, request, pk: int):
        round_ = get_object_or_404(Round, pk=pk)
        data = s.RoundMoneySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason")
        round_ = rounds.round_money_change(
            round_=round_, actor=request.user, reason=reason, **changes
        )
        return Response(s.RoundSerializer(round_).data)


@extend_schema_view(
    get=extend_schema(summary="Read a round's budget ledger"),
)
class RoundLedgerApi(APIView):
    """The round's budget ledger: committed, in batches, paid, failed, returned, available."""

    permission_classes = [CanReadLedger]

    @extend_schema(responses={200: s.LedgerSerializer})
    def get(self, request, pk: int):
        from payments.selectors import round_budget_ledger

        round_ = get_object_or_404(Round, pk=pk)
        return Response(round_budget_ledger(round_).as_dict())


# The citizen's own profile and applications.


@extend_schema_view(
    get=extend_schema(
        summary="Read my profile (RRN and account number masked)", examples=examples.PROFILE_READ
    ),
    put=extend_schema(summary="Fill or replace my profile", examples=examples.PROFILE),
    patch=extend_schema(summary="Change part of my profile", examples=examples.PROFILE),
)
class ProfileApi(APIView):
    permission_classes = [IsCitizen]

    def _applicant(self):
        return services.applicant_for_user(self.request.user)

    @extend_schema(responses={200: s.ProfileSerializer})
    def get(self, request):
        return Response(s.ProfileSerializer(self._applicant()).data)

    def _update(self, request, *, partial: bool):
        applicant = self._applicant()
        data = s.ProfileSerializer(applicant, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        applicant = services.applicant_profile_update(
            applicant=applicant, actor=request.user, data=data.validated_data
        )
        return Response(s.ProfileSerializer(applicant).data)

    @extend_schema(request=s.ProfileSerializer, responses={200: s.ProfileSerializer})
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(request=s.ProfileSerializer, responses={200: s.ProfileSerializer})
    def patch(self, request):
        return self._update(request, partial=True)


@extend_schema_view(
    get=extend_schema(summary="List my messages, newest first", examples=examples.NOTIFICATIONS),
)
class MyNotificationListApi(generics.ListAPIView):
    """The citizen's messages (decisions, reasons, payments), newest first."""

    permission_classes = [IsCitizen]
    serializer_class = s.NotificationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.notification_list_for_citizen(user=None).none()
        return selectors.notification_list_for_citizen(user=self.request.user)


class ApplicationFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Application.Status.choices)
    round = filters.NumberFilter(field_name="round_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Application
        fields = ["status", "round"]


@extend_schema_view(
    list=extend_schema(summary="List my applications"),
    retrieve=extend_schema(summary="Read my application", examples=examples.APPLICATION_READ),
    create=extend_schema(
        summary="Create a draft application in an open round", examples=examples.APPLICATION_CREATE
    ),
    partial_update=extend_schema(
        summary="Edit my application while a draft or waiting for documents"
    ),
)
class ApplicationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The citizen's applications: another citizen's id is simply not found."""

    permission_classes = [IsCitizen]
    serializer_class = s.ApplicationSerializer
    filterset_class = ApplicationFilter
    lookup_value_regex = ID_REGEX
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Application.objects.none()
        return selectors.application_list_for_citizen(user=self.request.user)

    @extend_schema(
        request=s.ApplicationCreateSerializer,
        responses={201: s.ApplicationSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request):
        data = s.ApplicationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        application = services.application_create(
            applicant=services.applicant_for_user(request.user),
            actor=request.user,
            round_=data.validated_data["round"],
            income_category=data.validated_data["income_category"],
            training=data.validated_data.get("training"),
        )
        # A new application has no documents yet: render it without reading it back.
        application = _without_documents(application)
        return Response(s.ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ApplicationUpdateSerializer, responses={200: s.ApplicationSerializer})
    def partial_update(self, request, pk=None):
        application = self.get_object()
        data = s.ApplicationUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        application = services.application_update(
            application=application, actor=request.user, data=data.validated_data
        )
        application = selectors.application_with_documents(application)
        return Response(s.ApplicationSerializer(application).data)


@extend_schema_view(
    post=extend_schema(
        summary="Upload a document to my application", examples=examples.DOCUMENT_UPLOAD
    ),
)
class ApplicationDocumentCreateApi(APIView):
    permission_classes = [IsCitizen]
    parser_classes = [MultiPartParser]  # a file travels in multipart/form-data alone

    @extend_schema(
        request=s.DocumentUploadSerializer,
        responses={
            201: s.DocumentSerializer,
            409: OpenApiResponse(
                description="`status`: `not_editable` (not a draft nor waiting for documents); "
                "`documents`: `too_many_documents` (BAEUM_MAX_DOCUMENTS_PER_APPLICATION)."
            ),
        },
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request, pk: int):
        application = selectors.application_get_for_citizen(
            applicant=services.applicant_for_user(request.user), pk=pk
        )
        data = s.DocumentUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        document = document_services.document_add(
            application=application,
            actor=request.user,
            kind=data.validated_data["kind"],
            uploaded=data.validated_data["file"],
        )
        return Response(s.DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


def _with_documents(application: Application) -> Application:
    """Load the documents an application's representation lists, unless it has none.

    `has_documents`, when the query that loaded the application annotated it, spares the
    query for an application without documents.
    """
    if getattr(application, "has_documents", True):
        return selectors.application_with_documents(application)
    return _without_documents(application)


def _without_documents(application: Application) -> Application:
    """Record that the application has no documents, as a prefetch would.

    An evaluated empty queryset, as prefetch_related_objects() leaves: iterating an
    unevaluated .none() still compiles its SQL before finding it empty, and going through
    application.documents builds the relation's filter first (0.1 ms).
    """
    documents = Document.objects.none()
    documents._result_cache = []
    documents._prefetch_done = True
    application._prefetched_objects_cache = {"documents": documents}
    return application


class _ApplicationTransitionApi(APIView):
    permission_classes = [IsCitizen]
    input_serializer = s.EmptySerializer

    @extend_schema(
        request=None, responses={200: s.ApplicationSerializer}, parameters=[IDEMPOTENCY_PARAMETER]
    )
    @idempotent
    def post(self, request, pk: int):
        application = selectors.application_get_for_citizen(
            applicant=services.applicant_for_user(request.user), pk=pk
        )
        data = self.input_serializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        application = self.perform(application, request.user, data.validated_data)
        application = selectors.application_with_documents(application)
        return Response(s.ApplicationSerializer(application).data)


@extend_schema_view(
    post=extend_schema(
        summary="Submit my application (again, after a documents request)",
        examples=examples.APPLICATION_SUBMIT,
    ),
)
class ApplicationSubmitApi(APIView):
    # The citizen's own application is found, scoped and locked by one query (the service).
    permission_classes = [IsCitizen]

    @extend_schema(
        request=None, responses={200: s.ApplicationSerializer}, parameters=[IDEMPOTENCY_PARAMETER]
    )
    @idempotent
    def post(self, request, pk: int):
        if request.data:  # the submit takes no body: anything sent is an unknown field
            s.EmptySerializer(data=request.data).is_valid(raise_exception=True)
        application = services.application_submit_own(
            applicant=services.applicant_for_user(request.user), pk=pk, actor=request.user
        )
        return Response(s.ApplicationSerializer(_with_documents(application)).data)


@extend_schema_view(
    post=extend_schema(summary="Withdraw my application before payment"),
)
class ApplicationWithdrawApi(_ApplicationTransitionApi):
    input_serializer = s.ReasonSerializer

    @extend_schema(
        request=s.ReasonSerializer,
        responses={200: s.ApplicationSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def perform(self, application, actor, data):
        return services.application_withdraw(
            application=application, actor=actor, reason=data.get("reason", "")
        )
