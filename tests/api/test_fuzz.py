"""Property-based: no generated input, valid or not, makes the API answer 5xx."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from config.wsgi import application
from tests.conftest import client_for
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db
# Reading the schema needs no database: it is generated from the code.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Like Django's test client: calling the WSGI app must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def citizen_token(db, applicant, open_round):
    ApplicationFactory(applicant=applicant, round=open_round)
    return client_for(applicant.user)._credentials["HTTP_AUTHORIZATION"]


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
def test_no_input_gives_a_server_error(case, citizen_token):
    case.headers = {**(case.headers or {}), "Authorization": citizen_token}
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
