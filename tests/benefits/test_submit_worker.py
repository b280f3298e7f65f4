"""Submit through a real Redis broker to a real Celery worker: one message after the commit,
screening first, then the "submitted" message out of the outbox (CI's third run)."""

import pytest

from benefits.models import Application, Notification
from tests.conftest import client_for
from tests.factories import ApplicationFactory
from tests.integration.test_worker import wait_for, worker  # noqa: F401 - the fixture

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_submit_is_screened_and_announced_by_the_worker(worker):  # noqa: F811
    application = ApplicationFactory()
    response = client_for(application.applicant.user).post(
        f"/api/v1/applications/{application.pk}/submit/"
    )
    assert response.status_code == 200

    def done():
        status = Application.objects.get(pk=application.pk).status
        message = Notification.objects.filter(application=application, kind="submitted").first()
        return status == "under_review" and message is not None and message.status == "sent"

    assert wait_for(done), worker.stdout.read() if worker.poll() is not None else ""
    assert Notification.objects.filter(application=application).count() == 1
