"""Registries and a scholarship round to screen against."""

from datetime import timedelta

import pytest
from django.utils import timezone

from benefits.models import Program
from eligibility.models import RegistryKind, RegistrySnapshot, TrainingCourse
from tests.factories import ProgramFactory, RoundFactory

COURSE_ID = "AIG20260001"


def snapshot(kind, status=RegistrySnapshot.Status.ACTIVE):
    return RegistrySnapshot.objects.create(kind=kind, status=status)


@pytest.fixture
def registries():
    """Active snapshots of every registry, with the catalogue course of the factories."""
    snaps = {kind: snapshot(kind) for kind in RegistryKind.values}
    today = timezone.localdate()
    TrainingCourse.objects.create(
        snapshot=snaps[RegistryKind.TRAINING_COURSES],
        line=2,
        course_id=COURSE_ID,
        name="빅데이터 분석 실무",
        institution="서울직업전문학교",
        starts_on=today,
        ends_on=today + timedelta(days=120),
        vocational=True,
    )
    return snaps


@pytest.fixture
def scholarship_round(db):
    return RoundFactory(
        program=ProgramFactory(code=Program.Code.SCHOLARSHIP),
        ruleset_version="scholarship-2026.1",
    )
