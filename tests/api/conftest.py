"""Fixtures of the API tests that call many endpoints in one test."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.factories import UserFactory


@pytest.fixture
def quick(settings, monkeypatch):
    """Keep tests that call every endpoint quick: they measure answers, not how long they take.

    A password is hashed at each registration and checked at each sign-in (about a second
    each with the production hasher), and the schema endpoint generates the schema anew
    each time (seconds): here a cheap hasher, and the schema generated once for all roles
    (the schema does not depend on who asks: it is served public).
    """
    # The factories hash their password once per run: with the suite's hasher, not this one.
    UserFactory.build()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    generated = {}
    get_schema = SchemaGenerator.get_schema

    def get_schema_once(self, request=None, public=False):
        if public not in generated:
            generated[public] = get_schema(self, request=request, public=public)
        return generated[public]

    monkeypatch.setattr(SchemaGenerator, "get_schema", get_schema_once)
