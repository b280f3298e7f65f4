"""Writes on applicants and applications: registering, profiles, drafts, submitting,
withdrawing and the caseworkers' decisions. Documents are in benefits.document_services,
rounds in benefits.rounds, screening verdicts in benefits.screening_record.

Each service owns its transaction, locks what it reads-then-writes, moves state only
through the model's FSM transitions (benefits.transitions) and writes the audit event in
the same transaction.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.utils import timezone

from benefits.models import Applicant, Application, Document, Notification, Round
from benefits.notifications import notification_enqueue
from benefits.rounds import round_accepts_applications
from benefits.transitions import application_locked, application_transition, required_reason
from core.audit import audit_record
from core.crypto import account_fingerprint, rrn_hmac
from core.exceptions import InvalidTransition
from core.fsm import require_transition
from core.prepared import PreparedQuery
from core.roles import Role
from core.rrn import rrn_birth_date
from core.transactions import service_atomic

User = get_user_model()

TRAINING_FIELDS = (
    "course_id",
    "course_name",
    "institution",
    "training_starts_on",
    "training_ends_on",
    "weekly_hours",
)
PROFILE_REQUIRED_FOR_SUBMIT = (
    "legal_name",
    "rrn",
    "phone",
    "district",
    "address",
    "bank_code",
    "account_number",
    "account_holder",
)


# Citizens and profiles.


@transaction.atomic
def citizen_register(*, username: str, password: str, email: str) -> User:
    """Create a citizen account with an empty applicant profile."""
    taken = ValidationError({"username": ValidationError("This username is taken.", code="unique")})
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    try:
        user = User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError as exc:  # registered by a concurrent request a moment ago
        raise taken from exc
    user.groups.add(Group.objects.get(name=Role.CITIZEN))
    applicant = Applicant.objects.create(user=user, email=email)
    audit_record(actor=user, obj=applicant, action="citizen.registered")
    return user


@transaction.atomic
def applicant_profile_update(*, applicant: Applicant, actor, data: dict) -> Applicant:
    """Update the profile from validated, normalized data."""
    applicant = Applicant.objects.select_for_update().get(pk=applicant.pk)
    changed = []
    if "rrn" in data and data["rrn"] != applicant.rrn:
        # A person's identity is fixed once an application has left the draft stage.
        if (
            applicant.rrn
            and applicant.applications.exclude(
                status__in=[Application.Status.DRAFT, Application.Status.WITHDRAWN]
            ).exists()
        ):
            raise ValidationError(
                {
                    "rrn": ValidationError(
                        "The resident registration number cannot change after an application "
                        "was submitted; contact your caseworker.",
                        code="rrn_locked",
                    )
                }
            )
        applicant.rrn = data["rrn"]
        applicant.rrn_hmac = rrn_hmac(data["rrn"])
        applicant.birth_date = rrn_birth_date(data["rrn"])
        changed.append("rrn")
    # Only replacing an account counts as a change (the pre-release audit flags it);
    # giving the first one does not.
    had_account = bool(applicant.bank_code and applicant.account_number)
    bank_changed = False
    for field in ("bank_code", "account_number"):
        if field in data and data[field] != getattr(applicant, field):
            setattr(applicant, field, data[field])
            bank_changed = True
            changed.append(field)
    if bank_changed:
        if had_account:
            applicant.account_changed_at = timezone.now()
        applicant.account_fingerprint = (
            account_fingerprint(applicant.bank_code, applicant.account_number)
            if applicant.bank_code and applicant.account_number
            else ""
        )
    if "consent_data_checks" in data and data["consent_data_checks"] != (
        applicant.consent_data_checks
    ):
        applicant.consent_data_checks = data["consent_data_checks"]
        applicant.consent_at = timezone.now() if data["consent_data_checks"] else None
        changed.append("consent_data_checks")
    for field in ("legal_name", "phone", "email", "district", "address", "account_holder"):
        if field in data and data[field] != getattr(applicant, field):
            setattr(applicant, field, data[field])
            changed.append(field)
    if not changed:
        return applicant
    try:
        with transaction.atomic():  # the unique blind index decides
            applicant.save()
    except IntegrityError as exc:
        raise ValidationError(
            {
                "rrn": ValidationError(
                    "This resident registration number is already registered to another account.",
                    code="rrn_taken",
                )
            }
        ) from exc
    audit_record(
        actor=actor, obj=applicant, action="profile.updated", data={"fields": sorted(changed)}
    )
    return applicant


# Applications.


def _training_errors(round_: Round, training: dict | None) -> dict:
    if not round_.program.requires_training:
        return {}
    if not training:
        return {
            "training": ValidationError("Training is required for the scholarship.", "required")
        }
    errors = {}
    for field in ("course_name", "institution", "starts_on", "ends_on", "weekly_hours"):
        if training.get(field) in (None, ""):
            errors[f"training.{field}"] = ValidationError("This field is required.", "required")
    return errors


def _apply_training(application: Application, training: dict | None) -> None:
    training = training or {}
    application.course_id = training.get("course_id", "") or ""
    application.course_name = training.get("course_name", "") or ""
    application.institution = training.get("institution", "") or ""
    application.training_starts_on = training.get("starts_on")
    application.training_ends_on = training.get("ends_on")
    application.weekly_hours = training.get("weekly_hours")


def _already_applied() -> ValidationError:
    return ValidationError(
        {
            "round": ValidationError(
                "You already have an application in this round; withdraw it to apply again.",
                code="already_applied",
            )
        }
    )


@service_atomic
def application_create(
    *, applicant: Applicant, actor, round_: Round, income_category: str, training: dict | None
) -> Application:
    """Create a draft application in an open round."""
    if not round_accepts_applications(round_):
        raise ValidationError(
            {"round": ValidationError("This round is not open for applications.", "round_not_open")}
        )
    errors = _training_errors(round_, training)
    if errors:
        raise ValidationError(errors)
    application = Application(applicant=applicant, round=round_, income_category=income_category)
    _apply_training(application, training)
    try:
        # The partial unique index is the only check, so it also decides two concurrent
        # creates. No savepoint of its own: nothing runs after the refusal but the
        # rollback of this function's atomic block.
        application.save()
    except IntegrityError as exc:
        raise _already_applied() from exc
    audit_record(
        actor=actor, obj=application, action="application.created", to_state=application.status
    )
    return application


@transaction.atomic
def application_update(*, application: Application, actor, data: dict) -> Application:
    """Edit an application while it is a draft or waits for documents."""
    application = application_locked(application)
    if not application.is_editable:
        raise InvalidTransition(
            f"The application can only be edited while it is a draft or waiting for documents; "
            f"it is '{application.status}'.",
            code="not_editable",
        )
    changed = []
    if "income_category" in data and data["income_category"] != application.income_category:
        application.income_category = data["income_category"]
        changed.append("income_category")
    if "training" in data:
        training = data["training"]
        errors = _training_errors(application.round, training)
        if errors:
            raise ValidationError(errors)
        _apply_training(application, training)
        changed.append("training")
    if changed:
        application.save()
        audit_record(
            actor=actor,
            obj=application,
            action="application.updated",
            data={"fields": changed},
        )
    return application


def _submit_errors(application: Application) -> dict:
    applicant = application.applicant
    errors = {}
    missing = [f for f in PROFILE_REQUIRED_FOR_SUBMIT if not getattr(applicant, f)]
    for field in missing:
        errors[f"profile.{field}"] = ValidationError(
            "Complete this profile field before submitting.", code="profile_incomplete"
        )
    if not applicant.consent_data_checks:
        errors["profile.consent_data_checks"] = ValidationError(
            "Consent to the eligibility and duplicate-benefit checks is required to submit.",
            code="consent_required",
        )
    training = {
        "course_name": application.course_name,
        "institution": application.institution,
        "starts_on": application.training_starts_on,
        "ends_on": application.training_ends_on,
        "weekly_hours": application.weekly_hours,
    }
    if application.round.program.requires_training:
        errors.update(_training_errors(application.round, training))
    return errors


@transaction.atomic
def application_submit(*, application: Application, actor) -> Application:
    """Submit a draft (or resubmit after a documents request) for screening."""
    return _submit(application_locked(application), actor)


@service_atomic
def application_submit_own(*, applicant: Applicant, pk: int, actor) -> Application:
    """Submit the applicant's own application `pk`; anyone else's is not found (404).

    One query finds, scopes and locks it, and tells whether it has documents
    (``has_documents``), so that rendering one without any needs no query. The profile
    checked is the caller's `applicant`, as loaded for this request (the API's token
    query reads it): it is not locked, here or in application_submit.
    """
    application = _OWN_APPLICATION_LOCKED.first(pk=pk, applicant_id=applicant.pk)
    if application is None:
        raise Http404
    application.applicant = applicant
    return _submit(application, actor)


# Compiled once (core.prepared): building this query costs the ORM more than running it.
_OWN_APPLICATION_LOCKED = PreparedQuery(
    lambda pk, applicant_id: (
        Application.objects.select_for_update(of=("self",))
        .select_related("round__program")
        .annotate(has_documents=Exists(Document.objects.filter(application=OuterRef("pk"))))
        .filter(pk=pk, applicant_id=applicant_id)
        .order_by()
    ),
    pk=int,
    applicant_id=int,
)


def _submit(application: Application, actor) -> Application:
    """Submit an application locked in the current transaction."""
    require_transition(application.submit, actor, action="submit")
    if application.status == Application.Status.DRAFT and not round_accepts_applications(
        application.round
    ):
        raise ValidationError(
            {"round": ValidationError("This round is not open for applications.", "round_not_open")}
        )
    errors = _submit_errors(application)
    if errors:
        raise ValidationError(errors)
    from_state = application.status
    application.submit()
    application.submitted_at = timezone.now()
    application.save(update_fields=["status", "submitted_at", "updated_at"])
    event = audit_record(
        actor=actor,
        obj=application,
        action="application.submitted",
        from_state=from_state,
        to_state=application.status,
    )
    notification = notification_enqueue(
        application=application,
        kind=Notification.Kind.SUBMITTED,
        event_key=str(event.pk),
        send_after_commit=False,
    )
    _screen_after_commit(application, then_send=notification)
    return application


def _screen_after_commit(application: Application, *, then_send: Notification | None) -> None:
    """Record the screening in the task outbox; it is sent after the commit, and the queued
    message is sent once the screening has run.

    A broker that is down at the commit delays the screening until the outbox sweeper
    sends it again, never loses it. Should screening fail for good, the message stays
    pending in the notification outbox and its own sweep (notifications_flush_task) sends
    it; it is never sent twice either way.
    """
    from benefits.tasks import notification_send_task
    from core.outbox import outbox_enqueue
    from eligibility.screening_tasks import application_screen_task

    # The submission time names this submission, so a retried task screens it once
    # and a resubmission after a documents request gets a run of its own.
    trigger = f"submit:{application.submitted_at.isoformat()}"
    outbox_enqueue(
        application_screen_task,
        application.pk,
        trigger,
        key=f"screen:{application.pk}:{trigger}",
        then=[(notification_send_task, [then_send.pk])] if then_send is not None else None,
    )


@transaction.atomic
def application_withdraw(*, application: Application, actor, reason: str = "") -> Application:
    """Withdraw an application at any stage before payment; a freed seat goes to the waitlist."""
    from benefits.selection import waitlist_promote_next
    from payments.models import Payment

    # Lock order: round, then application (as selection and batch building do). FOR NO KEY
    # UPDATE still serializes promotions, but lets a concurrent submit's foreign-key check
    # (KEY SHARE on the round, at its commit) through: FOR UPDATE made the two deadlock.
    round_ = Round.objects.select_for_update(no_key=True).get(pk=application.round_id)
    if Payment.objects.filter(
        application_id=application.pk, status__in=Payment.LIVE_STATES
    ).exists():
        raise InvalidTransition(
            "A payment for this application is already on its way; it can no longer be withdrawn."
        )
    application = application_transition(
        application, actor, transition="withdraw", action="application.withdrawn", reason=reason
    )
    if application.selected_at is not None:
        waitlist_promote_next(round_=round_, reason=f"Seat freed by application #{application.pk}")
    return application


@transaction.atomic
def application_approve(*, application: Application, actor, reason: str = "") -> Application:
    """Approve an application under review."""
    return application_transition(
        application, actor, transition="approve", action="application.approved", reason=reason
    )


@transaction.atomic
def application_reject(*, application: Application, actor, reason: str) -> Application:
    """Reject an application, with the reason the citizen will read."""
    reason = required_reason(reason)
    return application_transition(
        application, actor, transition="reject", action="application.rejected", reason=reason
    )


@transaction.atomic
def application_request_documents(
    *, application: Application, actor, reason: str, documents: list[str] | tuple = ()
) -> Application:
    """Ask the citizen for documents (optionally naming the kinds); they edit and resubmit."""
    reason = required_reason(reason)
    unknown = [kind for kind in documents if kind not in Document.Kind.values]
    if unknown:
        raise ValidationError(
            {"documents": ValidationError(f"Not a kind of document: {unknown}.", "invalid_choice")}
        )
    return application_transition(
        application,
        actor,
        transition="request_documents",
        action="application.documents_requested",
        reason=reason,
        data={"documents": list(documents)} if documents else None,
        changes={
            "decision_reason": reason,
            "documents_requested": sorted(set(documents)),
            "documents_requested_at": timezone.now(),
        },
    )


@transaction.atomic
def application_place(*, application: Application, actor, selected: bool) -> Application:
    """Select an approved application, or put it on the waitlist."""
    return application_transition(
        application,
        actor,
        transition="select" if selected else "waitlist",
        action="application.selected" if selected else "application.waitlisted",
    )


@transaction.atomic
def applicant_rrn_reveal(*, applicant: Applicant, actor, reason: str) -> str:
    """Return the unmasked RRN to a staff member allowed to see it, and log that they did."""
    reason = required_reason(reason)
    if not actor.has_perm("benefits.view_unmasked_rrn"):
        raise PermissionDenied
    audit_record(actor=actor, obj=applicant, action="applicant.rrn_revealed", reason=reason)
    return applicant.rrn


def applicant_for_user(user) -> Applicant:
    """Return the user's applicant profile, creating an empty one for older accounts."""
    try:
        return user.applicant  # loaded with the token, usually
    except Applicant.DoesNotExist:
        applicant, _ = Applicant.objects.get_or_create(user=user, defaults={"email": user.email})
        return applicant
