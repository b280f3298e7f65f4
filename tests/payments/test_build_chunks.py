"""A batch built in chunk tasks by application id: each chunk one transaction that any
worker may run, safe to run again; the last chunk to commit finishes the build once.
(Two real workers sharing the chunks, and one killed mid-chunk: tests/integration/test_faults.py.)
"""

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from benefits.models import Application, ApplicationFlag
from core.models import AuditEvent, TaskOutbox
from core.roles import Role
from payments import services
from payments.build import batch_build_chunk, batch_build_chunk_key, batch_build_dispatch
from payments.models import BuildChunk, DisbursementBatch, Payment
from tests.factories import UserFactory
from tests.payments.test_money_guards import lower_budget_behind_the_services, selected_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(db):
    return UserFactory(role=Role.FINANCE)


def payments_per_application(batch) -> dict[int, int]:
    return dict(
        Payment.objects.filter(batch=batch)
        .values("application_id")
        .annotate(n=Count("id"))
        .values_list("application_id", "n")
    )


def built_events(batch) -> int:
    return AuditEvent.objects.filter(object_id=str(batch.pk), action="batch.built").count()


def recorded_batch(round_, maker, django_capture_on_commit_callbacks, chunk_size=4):
    """A batch whose chunks are recorded, none of them run yet."""
    with django_capture_on_commit_callbacks(execute=False):
        batch = services.batch_create(round_=round_, actor=maker)
    with django_capture_on_commit_callbacks(execute=False):
        batch_build_dispatch(batch_id=batch.pk, chunk_size=chunk_size)
    return batch, list(BuildChunk.objects.filter(batch=batch).order_by("first"))


def test_a_build_is_cut_into_chunk_tasks_each_application_paid_once(
    maker, settings, django_capture_on_commit_callbacks
):
    settings.BAEUM_BUILD_CHUNK = 4
    round_ = selected_round(10)
    ids = sorted(round_.applications.values_list("pk", flat=True))

    # Eager, as `make run`: the chunk tasks run inline, in order, after the commits.
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.batch_create(round_=round_, actor=maker)

    batch.refresh_from_db()
    assert batch.is_ready and batch.status == DisbursementBatch.Status.DRAFT
    chunks = BuildChunk.objects.filter(batch=batch).order_by("first")
    # 10 applications: 4, 4 and the rest; the ends open for latecomers.
    assert [(c.first, c.last) for c in chunks] == [(1, ids[3]), (ids[4], ids[7]), (ids[8], None)]
    entries = TaskOutbox.objects.filter(key__startswith=batch_build_chunk_key(batch.pk, ""))
    assert set(entries.values_list("status", flat=True)) == {TaskOutbox.Status.DONE}
    assert entries.count() == 3
    assert payments_per_application(batch) == dict.fromkeys(ids, 1)
    # The progress the pages show, summed over the chunks.
    assert chunks.aggregate(n=Sum("payments"))["n"] == batch.build_expected == 10
    assert built_events(batch) == 1

    # The cutting task delivered again: nothing sent, nothing written twice.
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_build_dispatch(batch_id=batch.pk) == 0
    assert services.batch_build(batch_id=batch.pk).is_ready
    assert payments_per_application(batch) == dict.fromkeys(ids, 1)
    assert (chunks.count(), built_events(batch)) == (3, 1)


def test_the_build_finishes_once_with_its_last_chunk_in_whatever_order(
    maker, django_capture_on_commit_callbacks
):
    batch, chunks = recorded_batch(selected_round(8), maker, django_capture_on_commit_callbacks)
    assert len(chunks) == 2

    batch_build_chunk(batch_id=batch.pk, first=chunks[1].first, last=chunks[1].last)
    batch.refresh_from_db()
    # Half of it gathered: still building, so it cannot be submitted yet.
    assert not batch.is_ready and batch.payments.count() == 4
    batch_build_chunk(batch_id=batch.pk, first=chunks[0].first, last=chunks[0].last)
    batch.refresh_from_db()
    assert batch.is_ready and batch.payments.count() == 8
    # A duplicate delivery of either chunk after the finish writes nothing.
    batch_build_chunk(batch_id=batch.pk, first=chunks[1].first, last=chunks[1].last)
    assert batch.payments.count() == 8 and built_events(batch) == 1


def test_a_chunk_run_again_holds_nobody_twice_and_pays_nobody_held(
    maker, django_capture_on_commit_callbacks
):
    round_ = selected_round(8)
    flagged = round_.applications.order_by("pk").first()
    ApplicationFlag.objects.create(
        application=flagged, kind="eligibility_changed", summary="moved", raised_at=timezone.now()
    )
    batch, chunks = recorded_batch(round_, maker, django_capture_on_commit_callbacks)
    first = chunks[0]
    batch_build_chunk(batch_id=batch.pk, first=first.first, last=first.last)
    held = Payment.objects.get(application=flagged)
    assert held.status == Payment.Status.CANCELLED and held.hold_reason.endswith("moved")

    # Run again (its worker died before the outbox heard it had finished).
    assert batch_build_chunk(batch_id=batch.pk, first=first.first, last=first.last) == 0
    assert list(Payment.objects.filter(application=flagged)) == [held]
    assert payments_per_application(batch) == dict.fromkeys(
        round_.applications.order_by("pk").values_list("pk", flat=True)[:4], 1
    )


def test_a_chunk_whose_mark_was_lost_still_pays_nobody_twice(
    maker, django_capture_on_commit_callbacks
):
    batch, chunks = recorded_batch(selected_round(8), maker, django_capture_on_commit_callbacks)
    first = chunks[0]
    batch_build_chunk(batch_id=batch.pk, first=first.first, last=first.last)
    BuildChunk.objects.filter(pk=first.pk).update(built_at=None)
    batch_build_chunk(batch_id=batch.pk, first=first.first, last=first.last)
    live = Payment.objects.filter(batch=batch, status__in=Payment.LIVE_STATES)
    assert live.count() == 4 == live.values("application_id").distinct().count()


def test_a_chunk_of_a_batch_cancelled_mid_build_writes_nothing(
    maker, django_capture_on_commit_callbacks
):
    batch, chunks = recorded_batch(selected_round(8), maker, django_capture_on_commit_callbacks)
    batch_build_chunk(batch_id=batch.pk, first=chunks[0].first, last=chunks[0].last)
    services.batch_cancel(batch=batch, actor=maker, reason="wrong round")

    assert batch_build_chunk(batch_id=batch.pk, first=chunks[1].first, last=chunks[1].last) == 0
    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.CANCELLED
    assert set(batch.payments.values_list("status", flat=True)) == {Payment.Status.CANCELLED}
    assert batch.payments.count() == 4 and built_events(batch) == 0
    # Its people are free for the next batch.
    nxt = services.batch_build(batch_id=services.batch_create(round_=batch.round, actor=maker).pk)
    assert nxt.payments.filter(status=Payment.Status.PENDING).count() == 8


def test_a_round_over_budget_when_the_last_chunk_lands_pays_nothing(
    maker, django_capture_on_commit_callbacks
):
    round_ = selected_round(8)
    batch, chunks = recorded_batch(round_, maker, django_capture_on_commit_callbacks)
    batch_build_chunk(batch_id=batch.pk, first=chunks[0].first, last=chunks[0].last)
    lower_budget_behind_the_services(round_, by_seats=1)
    batch_build_chunk(batch_id=batch.pk, first=chunks[1].first, last=chunks[1].last)
    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.CANCELLED
    assert set(batch.payments.values_list("status", flat=True)) == {Payment.Status.CANCELLED}
    assert Application.objects.filter(round=round_, payments__status="pending").count() == 0
