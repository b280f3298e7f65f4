"""Writes on programs, rounds, applicants, applications and documents.

Each service owns its transaction, locks what it reads-then-writes, moves state only
through the model's FSM transitions and writes the audit event in the same transaction.
"""

import tempfile
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.utils import timezone

from benefits.documents import document_content_type
from benefits.models import Applicant, Application, Document, Notification, Round
from benefits.notifications import notification_enqueue
from core.audit import audit_record
from core.crypto import account_fingerprint, encrypt_file, rrn_hmac
from core.exceptions import Conflict, InvalidTransition
from core.files import stored_file_chunks
from core.fsm import require_transition
from core.prepared import PreparedQuery
from core.roles import Role
from core.rrn import rrn_birth_date
from core.transactions import service_atomic
from eligibility import rules

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


def round_accepts_applications(round_: Round, *, now=None) -> bool:
    now = now or timezone.now()
    return (
        round_.status == Round.Status.OPEN
        and round_.applications_open_at <= now < round_.applications_close_at
    )


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


def _lock_application(application: Application) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("round__program", "applicant")
        .get(pk=application.pk)
    )


@transaction.atomic
def application_update(*, application: Application, actor, data: dict) -> Application:
    """Edit an application while it is a draft or waits for documents."""
    application = _lock_application(application)
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


def document_add(*, application: Application, actor, kind: str, uploaded: UploadedFile) -> Document:
    """Store an uploaded PDF, PNG or JPEG, checked by its content, with the application."""
    # Parsed before the transaction: the check may take seconds, and holds no lock.
    mime = document_content_type(uploaded=uploaded)
    with transaction.atomic():
        return _document_store(
            application=application, actor=actor, kind=kind, uploaded=uploaded, mime=mime
        )


def _document_store(
    *, application, actor, kind, uploaded, mime, states=Application.DOCUMENT_STATES
) -> Document:
    """Store a checked upload with the application while it is in one of `states`."""
    application = _lock_application(application)
    if application.status not in states:
        raise InvalidTransition(
            f"Documents can only be added while the application is a draft, waiting for "
            f"documents or under appeal; it is '{application.status}'.",
            code="not_editable",
        )
    cap = settings.BAEUM_MAX_DOCUMENTS_PER_APPLICATION
    # Counted under the application's lock: two uploads at once cannot both take the last place.
    if application.documents.count() >= cap:
        raise Conflict(
            f"An application holds at most {cap} documents.",
            code="too_many_documents",
            field="documents",
        )
    uploaded.seek(0)
    original_name = (uploaded.name or "document").rsplit("/", 1)[-1][:255]
    document = Document(
        application=application,
        kind=kind,
        original_name=original_name,
        content_type=mime,
        size=uploaded.size,
        uploaded_by=actor,
    )
    with tempfile.TemporaryFile() as sealed:
        document.sha256 = encrypt_file(uploaded, sealed, purpose=Document.FILE_PURPOSE)
        sealed.seek(0)
        # The stored name tells nothing of the content: the type is on the row.
        document.file.save("upload.bin", File(sealed), save=False)
    try:
        document.save()
    except Exception:
        document.file.delete(save=False)
        raise
    audit_record(
        actor=actor,
        obj=application,
        action="document.uploaded",
        data={"document": document.pk, "kind": kind},
    )
    return document


def document_chunks(document: Document) -> Iterator[bytes]:
    """The content of a stored document, checked whole before the first byte is handed out;
    documents stored before they were encrypted are read as they are."""
    return stored_file_chunks(document.file, purpose=Document.FILE_PURPOSE, plaintext_allowed=True)


@transaction.atomic
def document_open(
    *, application: Application, document_id: int, actor
) -> tuple[Document, Iterator[bytes]]:
    """One document of the application and its content, for a reviewer to read; who read it
    is audited, once the file has read whole."""
    # The documents came with the application (application_get_for_reviewer).
    document = next((d for d in application.documents.all() if d.pk == document_id), None)
    if document is None:
        raise Http404
    chunks = document_chunks(document)
    audit_record(
        actor=actor,
        obj=application,
        action="document.viewed",
        data={"document": document.pk, "kind": document.kind},
    )
    return document, chunks


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
    return _submit(_lock_application(application), actor)


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
    application = _application_transition(
        application, actor, transition="withdraw", action="application.withdrawn", reason=reason
    )
    if application.selected_at is not None:
        waitlist_promote_next(round_=round_, reason=f"Seat freed by application #{application.pk}")
    return application


# The message the citizen gets after each transition, if any.
TRANSITION_NOTIFICATIONS = {
    "request_documents": Notification.Kind.DOCUMENTS_REQUESTED,
    "approve": Notification.Kind.APPROVED,
    "reject": Notification.Kind.REJECTED,
    "select": Notification.Kind.SELECTED,
    "waitlist": Notification.Kind.WAITLISTED,
    "promote": Notification.Kind.SELECTED,
    "appeal": Notification.Kind.APPEAL_RECEIVED,
    "overturn": Notification.Kind.APPEAL_OVERTURNED,
    "uphold": Notification.Kind.APPEAL_UPHELD,
    "revoke": Notification.Kind.APPROVAL_REVOKED,
}
# Transitions that decide the application: they record who decided, when and why.
DECISIONS = ("approve", "reject", "overturn", "uphold", "revoke")
# Decisions the citizen may object to (행정기본법 제36조); an upheld appeal is final.
APPEALABLE = ("reject", "revoke")


def application_appeal_until(application: Application):
    """The last day the citizen may appeal the application's rejection, or None."""
    if (
        application.status != Application.Status.REJECTED
        or application.rejection_final
        or application.decided_at is None
    ):
        return None
    decided_on = timezone.localdate(application.decided_at)
    return decided_on + timedelta(days=application.round.appeal_days)


def _application_transition(
    application: Application,
    actor,
    *,
    transition: str,
    action: str,
    reason: str = "",
    data: dict | None = None,
    changes: dict | None = None,
) -> Application:
    """Apply one FSM transition with its audit event and the citizen's message.

    `changes` are other fields the transition sets (saved with it).
    """
    application = _lock_application(application)
    method = getattr(application, transition)
    require_transition(method, actor, action=transition.replace("_", " "))
    from_state = application.status
    method()
    changes = dict(changes or {})
    if transition in DECISIONS:
        changes.update(
            decision_reason=reason,
            decided_at=timezone.now(),
            decided_by=actor if actor is not None and actor.is_authenticated else None,
            rejection_final=transition == "uphold",
        )
    for name, value in changes.items():
        setattr(application, name, value)
    application.save(update_fields=["status", "updated_at", *changes])
    event = audit_record(
        actor=actor,
        obj=application,
        action=action,
        from_state=from_state,
        to_state=application.status,
        reason=reason,
        data=data,
    )
    if transition in TRANSITION_NOTIFICATIONS:
        appeal_until = application_appeal_until(application) if transition in APPEALABLE else None
        notification_enqueue(
            application=application,
            kind=TRANSITION_NOTIFICATIONS[transition],
            event_key=str(event.pk),
            reason=reason,
            appeal_until=appeal_until.isoformat() if appeal_until else "-",
        )
    return application


@transaction.atomic
def application_screening_start(*, application: Application) -> Application:
    """Move a submitted application into screening (a system action)."""
    return _application_transition(
        application, None, transition="start_screening", action="application.screening_started"
    )


# The reason a citizen reads when the round decided automatically and every rule passed.
AUTO_APPROVAL_REASON = (
    "모든 자격 요건을 충족하여 자동 승인되었습니다. / Approved automatically: every rule passed."
)


@transaction.atomic
def application_screening_finish(
    *, application: Application, outcome: str, failed: list[dict] | tuple = ()
) -> Application:
    """Record a screening's verdict: hand the application to the caseworkers, or, in a round
    that decides automatically, approve an eligible one and reject an ineligible one.

    `failed` lists the rule results that failed (rule, code, message, message_ko); an
    automatic rejection gives them as its reason, and its audit event names them.
    """
    application = _application_transition(
        application,
        None,
        transition="finish_screening",
        action="application.screened",
        data={"outcome": outcome},
    )
    if not application.round.auto_decisions or outcome == rules.NEEDS_REVIEW:
        return application
    if outcome == rules.ELIGIBLE:
        return _application_transition(
            application,
            None,
            transition="approve",
            action="application.approved",
            reason=AUTO_APPROVAL_REASON,
            data={"automatic": True, "outcome": outcome},
        )
    return _application_transition(
        application,
        None,
        transition="reject",
        action="application.rejected",
        reason="; ".join(f"{r['message_ko']} / {r['message']}" for r in failed),
        data={"automatic": True, "outcome": outcome, "rules": [r["code"] for r in failed]},
    )


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ValidationError("A reason is required.", "required")})
    return reason


@transaction.atomic
def application_approve(*, application: Application, actor, reason: str = "") -> Application:
    """Approve an application under review."""
    return _application_transition(
        application, actor, transition="approve", action="application.approved", reason=reason
    )


@transaction.atomic
def application_reject(*, application: Application, actor, reason: str) -> Application:
    """Reject an application, with the reason the citizen will read."""
    reason = _required_reason(reason)
    return _application_transition(
        application, actor, transition="reject", action="application.rejected", reason=reason
    )


@transaction.atomic
def application_request_documents(
    *, application: Application, actor, reason: str, documents: list[str] | tuple = ()
) -> Application:
    """Ask the citizen for documents (optionally naming the kinds); they edit and resubmit."""
    reason = _required_reason(reason)
    unknown = [kind for kind in documents if kind not in Document.Kind.values]
    if unknown:
        raise ValidationError(
            {"documents": ValidationError(f"Not a kind of document: {unknown}.", "invalid_choice")}
        )
    return _application_transition(
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
    return _application_transition(
        application,
        actor,
        transition="select" if selected else "waitlist",
        action="application.selected" if selected else "application.waitlisted",
    )


@transaction.atomic
def applicant_rrn_reveal(*, applicant: Applicant, actor, reason: str) -> str:
    """Return the unmasked RRN to a staff member allowed to see it, and log that they did."""
    reason = _required_reason(reason)
    if not actor.has_perm("benefits.view_unmasked_rrn"):
        raise PermissionDenied
    audit_record(actor=actor, obj=applicant, action="applicant.rrn_revealed", reason=reason)
    return applicant.rrn


# Rounds.


def _round_transition(round_: Round, actor, *, transition: str, reason: str = "") -> Round:
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    method = getattr(round_, transition)
    require_transition(method, actor, action=f"{transition} the round")
    from_state = round_.status
    method()
    round_.save()
    audit_record(
        actor=actor,
        obj=round_,
        action=f"round.{transition}",
        from_state=from_state,
        to_state=round_.status,
        reason=reason,
    )
    return round_


@transaction.atomic
def round_open(*, round_: Round, actor) -> Round:
    """Open a draft round for applications."""
    return _round_transition(round_, actor, transition="open")


@transaction.atomic
def round_close(*, round_: Round, actor) -> Round:
    """Close a round to new applications."""
    return _round_transition(round_, actor, transition="close")


# The round's money settings. Amount and capacity are what every applicant was promised
# when the round opened; the budget may move, never below what is already committed.
ROUND_MONEY_FIELDS = ("budget", "amount", "capacity", "top_up_amount", "top_up_share")
FIXED_ONCE_OPEN = ("amount", "capacity")
FINISHED_ROUND_STATES = (Round.Status.COMPLETED, Round.Status.CANCELLED)


def _round_money_errors(round_: Round, changes: dict) -> dict:
    errors = {}
    if round_.status != Round.Status.DRAFT:
        for name in FIXED_ONCE_OPEN:
            if name in changes and changes[name] != getattr(round_, name):
                errors[name] = ValidationError(
                    f"The round is {round_.status}: its {name} was fixed when it opened.",
                    "fixed_after_open",
                )
    budget = changes.get("budget", round_.budget)
    amount = changes.get("amount", round_.amount)
    capacity = changes.get("capacity", round_.capacity)
    if not errors and budget < capacity * amount:
        errors["budget"] = ValidationError(
            f"The budget must hold the capacity times the amount: {capacity * amount:,} KRW.",
            "budget_below_capacity",
        )
    return errors


@transaction.atomic
def round_money_change(*, round_: Round, actor, reason: str, **changes) -> Round:
    """Change a round's money settings within the rules, and audit who, what and why."""
    from payments.selectors import round_budget_ledger

    unknown = set(changes) - set(ROUND_MONEY_FIELDS)
    if unknown:
        raise TypeError(f"not a money setting: {sorted(unknown)}")
    if not actor.has_perm("benefits.manage_round"):
        raise PermissionDenied
    reason = _required_reason(reason)
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.status in FINISHED_ROUND_STATES:
        raise InvalidTransition(f"The round is {round_.status}: its money can no longer change.")
    errors = _round_money_errors(round_, changes)
    if errors:
        raise ValidationError(errors)
    if changes.get("budget", round_.budget) < round_.budget:
        ledger = round_budget_ledger(round_)
        floor = ledger.committed - ledger.returned
        if changes["budget"] < floor:
            raise Conflict(
                f"{floor:,} KRW of this round is already committed (selected recipients, "
                f"payments and top-ups): the budget cannot go below it.",
                code="budget_below_committed",
                field="budget",
            )
    changed = {
        name: [getattr(round_, name), value]
        for name, value in changes.items()
        if getattr(round_, name) != value
    }
    for name, (_, value) in changed.items():
        setattr(round_, name, value)
    if changed:
        round_.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=actor, obj=round_, action="round.money_changed", reason=reason, data=changed
        )
    return round_


def applicant_for_user(user) -> Applicant:
    """Return the user's applicant profile, creating an empty one for older accounts."""
    try:
        return user.applicant  # loaded with the token, usually
    except Applicant.DoesNotExist:
        applicant, _ = Applicant.objects.get_or_create(user=user, defaults={"email": user.email})
        return applicant
