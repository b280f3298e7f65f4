"""Reads on programs, rounds and applications, scoped to who is asking."""

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import (
    Exists,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.shortcuts import get_object_or_404

from benefits.models import (
    Appeal,
    Application,
    ApplicationFlag,
    Document,
    Notification,
    Program,
    Round,
)
from benefits.rescreen import rescreen_chunk_key
from core.models import TaskOutbox
from core.roles import Role, user_has_role
from eligibility.models import ScreeningRun

PUBLIC_ROUND_STATES = [s for s in Round.Status.values if s != Round.Status.DRAFT]


def round_list_for_user(*, user) -> QuerySet[Round]:
    """Rounds anyone may see: drafts only for staff."""
    rounds = Round.objects.select_related("program")
    if user.is_authenticated and (user.is_superuser or user_has_role(user, *Role.STAFF)):
        return rounds
    return rounds.filter(status__in=PUBLIC_ROUND_STATES)


def program_list_with_open_rounds() -> QuerySet[Program]:
    """Programs, each with its open rounds prefetched."""
    open_rounds = Round.objects.filter(status=Round.Status.OPEN).select_related("program")
    return Program.objects.prefetch_related(
        Prefetch("rounds", queryset=open_rounds, to_attr="open_rounds")
    )


def application_list_for_citizen(*, user) -> QuerySet[Application]:
    """The citizen's own applications; nobody else's exist for them."""
    return (
        Application.objects.filter(applicant__user=user)
        .select_related("round__program")
        .prefetch_related("documents", "payments", "appeals")
    )


def application_get_for_citizen(*, applicant, pk: int) -> Application:
    """The citizen's own application, or 404 as if no other existed."""
    # Not .only(): the FSM mixin reads the status on load, which would cost a second query.
    return get_object_or_404(Application, pk=pk, applicant=applicant)


def application_missing_documents(application: Application) -> list[str]:
    """The kinds of document the citizen still has to upload, from the documents loaded.

    A scholarship needs an enrollment certificate; a caseworker's request for documents
    names kinds that count as given once uploaded after the request.
    """
    documents = application.documents.all()
    needed = set()
    if application.round.program.requires_training:
        needed.add(Document.Kind.ENROLLMENT_CERTIFICATE)
    needed -= {d.kind for d in documents}
    asked_at = application.documents_requested_at
    if asked_at is not None and application.status == Application.Status.NEEDS_DOCUMENTS:
        given = {d.kind for d in documents if d.uploaded_at >= asked_at}
        needed |= set(application.documents_requested) - given
    return sorted(needed)


def notification_list_for_citizen(*, user) -> QuerySet[Notification]:
    """The citizen's own messages, newest first."""
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def application_with_documents(application: Application) -> Application:
    """Load the documents an application's API representation lists."""
    prefetch_related_objects([application], "documents")
    return application


# The review queue's flags; `review_flags` and `filter_by_review_flag` must agree.
REVIEW_FLAGS = (
    "duplicate",
    "ineligible",
    "needs_review",
    "needs_documents",
    "eligibility_changed",
    "appeal",
)


def current_screening(application: Application):
    """The current screening run prefetched by application_list_for_reviewer, or None."""
    runs = getattr(application, "current_runs", None)
    return runs[0] if runs else None


def open_appeal(application: Application) -> Appeal | None:
    """The appeal waiting for a decision, prefetched by application_list_for_reviewer."""
    appeals = getattr(application, "open_appeals", None)
    if appeals is None:
        appeals = list(application.appeals.filter(outcome=""))
    return appeals[0] if appeals else None


def open_flags(application: Application) -> list[ApplicationFlag]:
    """The flags not yet cleared, prefetched by application_list_for_reviewer."""
    flags = getattr(application, "flags_open", None)
    if flags is None:
        flags = list(application.flags.filter(cleared_at__isnull=True))
    return flags


def review_flags(application: Application) -> list[str]:
    """The flags a caseworker sees on an application of the queue."""
    run = current_screening(application)
    flags = []
    if run and run.duplicate_found:
        flags.append("duplicate")
    if run and run.outcome in ("ineligible", "needs_review"):
        flags.append(run.outcome)
    if application.status == Application.Status.NEEDS_DOCUMENTS:
        flags.append("needs_documents")
    flags += [flag.kind for flag in open_flags(application)]
    if application.status == Application.Status.APPEALED:
        flags.append("appeal")
    return flags


def filter_by_review_flag(queryset: QuerySet[Application], flag: str) -> QuerySet[Application]:
    """Keep the applications that review_flags() would give this flag.

    Appeals come oldest first: each has a deadline to be decided by.
    """
    if flag == "duplicate":
        return queryset.filter(
            screening_runs__is_current=True, screening_runs__duplicate_found=True
        )
    if flag in ("ineligible", "needs_review"):
        return queryset.filter(screening_runs__is_current=True, screening_runs__outcome=flag)
    if flag == "needs_documents":
        return queryset.filter(status=Application.Status.NEEDS_DOCUMENTS)
    if flag in ApplicationFlag.Kind.values:
        flagged = ApplicationFlag.objects.filter(
            application=OuterRef("pk"), kind=flag, cleared_at__isnull=True
        )
        return queryset.filter(Exists(flagged))
    if flag == "appeal":
        filed = Appeal.objects.filter(application=OuterRef("pk"), outcome="").values("filed_at")
        return (
            queryset.filter(status=Application.Status.APPEALED)
            .annotate(appeal_filed_at=Subquery(filed[:1]))
            .order_by("appeal_filed_at", "id")
        )
    raise ValueError(f"unknown review flag {flag!r}")


def application_list_for_reviewer() -> QuerySet[Application]:
    """Applications past the draft stage, oldest submission first, with their current
    screening, open appeal and open flags."""
    from eligibility.models import ScreeningRun

    current = ScreeningRun.objects.filter(is_current=True)
    return (
        Application.objects.exclude(status=Application.Status.DRAFT)
        .select_related("round__program", "applicant")
        .prefetch_related(
            Prefetch("screening_runs", queryset=current, to_attr="current_runs"),
            Prefetch("appeals", queryset=Appeal.objects.filter(outcome=""), to_attr="open_appeals"),
            Prefetch(
                "flags",
                queryset=ApplicationFlag.objects.filter(cleared_at__isnull=True),
                to_attr="flags_open",
            ),
        )
        .order_by("submitted_at", "id")
    )


def application_get_for_reviewer(*, pk: int) -> Application:
    """One application with everything the review screen shows."""
    return get_object_or_404(
        application_list_for_reviewer()
        .select_related("recovery")
        .prefetch_related("documents", "appeals", "match_resolutions__resolved_by"),
        pk=pk,
    )


def application_recovery(application: Application):
    """The application's recovery (a training that ended early after payment), or None."""
    try:
        return application.recovery
    except ObjectDoesNotExist:
        return None


def round_rescreen_progress(*, round_id: int, job_key: str) -> dict:
    """How far a round's re-screen is: its applications screened (summed over the chunks,
    as their runs), the applications under review, and its chunks done of those recorded."""
    chunks = TaskOutbox.objects.filter(key__startswith=rescreen_chunk_key(round_id, job_key, ""))
    return {
        "screened": ScreeningRun.objects.filter(
            application__round_id=round_id, trigger_key=f"rescreen:{job_key}"
        ).count(),
        "under_review": Application.objects.filter(
            round_id=round_id, status=Application.Status.UNDER_REVIEW
        ).count(),
        "chunks": chunks.count(),
        "chunks_done": chunks.filter(status=TaskOutbox.Status.DONE).count(),
    }
