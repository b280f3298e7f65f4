"""Caseworkers' judgements of duplicate matches, which later screenings respect."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from benefits.models import Application
from benefits.transitions import application_locked, required_reason
from core.audit import audit_record
from eligibility import rules
from eligibility.models import MatchResolution, ScreeningRun


def _current_records(application: Application) -> dict[str, tuple[str, dict]]:
    """The records the application's current screening matched: {match id: (registry, record)}."""
    run = ScreeningRun.objects.filter(application=application, is_current=True).first()
    found = {}
    for match in run.duplicate_matches() if run else ():
        registry = match["registry"]
        for record in rules.match_records(registry, match.get("evidence") or {}):
            found[rules.match_id(registry, record)] = (registry, record)
    return found


@transaction.atomic
def match_resolve(
    *, application: Application, actor, match_id: str, resolution: str, reason: str
) -> MatchResolution:
    """Record a caseworker's judgement of one matched record of the current screening.

    Judged again, the record keeps one resolution, the latest; each judgement is audited.
    """
    if not actor.has_perm("benefits.review_application"):
        raise PermissionDenied
    reason = required_reason(reason)
    if resolution not in MatchResolution.Resolution.values:
        raise ValidationError(
            {"resolution": ValidationError("Not a resolution.", "invalid_choice")}
        )
    application = application_locked(application)
    found = _current_records(application).get(match_id)
    if found is None:
        raise Http404  # not a match of this application's current screening
    registry, record = found
    key = match_id.partition(".")[2]
    previous = (
        MatchResolution.objects.select_for_update()
        .filter(application=application, registry=registry, record_key=key)
        .first()
    )
    judgement, _ = MatchResolution.objects.update_or_create(
        application=application,
        registry=registry,
        record_key=key,
        defaults={
            "record": record,
            "resolution": resolution,
            "reason": reason,
            "resolved_by": actor,
            "resolved_at": timezone.now(),
        },
    )
    audit_record(
        actor=actor,
        obj=application,
        action="application.match_resolved",
        reason=reason,
        data={
            "match": match_id,
            "registry": registry,
            "resolution": resolution,
            "previous": previous.resolution if previous else None,
        },
    )
    return judgement
