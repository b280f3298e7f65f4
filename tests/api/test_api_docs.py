"""Swagger UI and ReDoc come from Baeum's own static files: they work on a closed network."""

import re

import pytest
from django.contrib.staticfiles import finders

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
# Any scheme-qualified or protocol-relative address inside the page, in markup or script.
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_api_docs_page_loads_nothing_from_another_host(anon, path):
    response = anon.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert not EXTERNAL.findall(page), EXTERNAL.findall(page)
    assets = [a for a in ASSET.findall(page) if a.startswith("/static/")]
    assert any(a.endswith(".js") for a in assets), page
    for asset in assets:
        name = asset.removeprefix("/static/").split("?")[0]
        assert finders.find(name), f"{asset} is not among Baeum's static files"
