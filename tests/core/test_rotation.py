import base64

import pytest
from django.core.management import call_command
from django.db import connection

from benefits.models import Applicant
from tests.factories import ApplicantFactory

NEW_KEY = "k2:" + base64.urlsafe_b64encode(b"\x07" * 32).decode()


def raw_tokens(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT rrn, account_number FROM benefits_applicant WHERE id = %s", [pk])
        return cursor.fetchone()


@pytest.mark.django_db
def test_rotation_reencrypts_old_rows_under_the_new_key(settings):
    applicants = ApplicantFactory.create_batch(3)
    old = raw_tokens(applicants[0].pk)
    settings.BAEUM_ENCRYPTION_KEYS = f"{NEW_KEY},{settings.BAEUM_ENCRYPTION_KEYS}"

    call_command("rotate_encryption_keys", "--chunk", "2")

    for applicant in applicants:
        rrn, account = raw_tokens(applicant.pk)
        assert rrn.startswith("v1:k2:") and account.startswith("v1:k2:")
        fresh = Applicant.objects.get(pk=applicant.pk)
        assert (fresh.rrn, fresh.account_number) == (applicant.rrn, applicant.account_number)
    assert raw_tokens(applicants[0].pk) != old
    # Running it again finds nothing left to do.
    before = [raw_tokens(a.pk) for a in applicants]
    call_command("rotate_encryption_keys")
    assert [raw_tokens(a.pk) for a in applicants] == before
