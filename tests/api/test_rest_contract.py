"""docs/api.md lists every endpoint of the OpenAPI schema, with who may call it and its summary.

The table between the markers in docs/api.md is generated from the schema and the views'
permissions; when an endpoint is added or changes, rewrite it with

    BAEUM_WRITE_DOCS=1 .venv/bin/python -m pytest tests/api/test_rest_contract.py

and read the diff.
"""

import os
from pathlib import Path
from types import SimpleNamespace

from drf_spectacular.generators import SchemaGenerator
from rest_framework.permissions import AllowAny

from api.permissions import HasRole
from core.roles import Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
START, END = "<!-- endpoints: generated -->", "<!-- endpoints: end -->"
METHOD_ORDER = ["get", "post", "put", "patch", "delete"]


def _who(view, method: str) -> str:
    view.request = SimpleNamespace(method=method.upper())
    view.action = getattr(view, "action", None)
    names = []
    for permission in view.get_permissions():
        if isinstance(permission, AllowAny):
            return "anyone"
        if isinstance(permission, HasRole):
            roles = permission.roles
            if set(roles) == set(Role.STAFF):
                names.append("staff (every staff role)")
            else:
                names.extend(roles)
    return ", ".join(names) or "signed in"


def endpoint_table() -> str:
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    # After get_schema(), the generator holds the endpoints it documented.
    views = {
        (path, method.lower()): view
        for path, _, method, view in generator._get_paths_and_endpoints()
    }
    rows = ["| method | path | who | what |", "|---|---|---|---|"]
    for path in sorted(schema["paths"]):
        operations = schema["paths"][path]
        for method in sorted(operations, key=METHOD_ORDER.index):
            operation = operations[method]
            who = _who(views[(path, method)], method)
            rows.append(f"| {method.upper()} | `{path}` | {who} | {operation.get('summary', '')} |")
    return "\n".join(rows)


def test_every_operation_has_a_summary():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not operation.get("summary")
    ]
    assert not missing, f"give these operations a summary (extend_schema(summary=…)): {missing}"


def test_docs_api_lists_every_endpoint_as_the_schema_does():
    text = DOC.read_text()
    before, rest = text.split(START + "\n", 1)
    _, after = rest.split(END, 1)
    table = endpoint_table()
    if os.environ.get("BAEUM_WRITE_DOCS"):
        DOC.write_text(f"{before}{START}\n{table}\n{END}{after}")
        return
    documented = rest.split(END, 1)[0].strip()
    assert documented == table, (
        "docs/api.md's endpoint table differs from the schema; rewrite it with "
        "BAEUM_WRITE_DOCS=1 .venv/bin/python -m pytest tests/api/test_rest_contract.py"
    )
