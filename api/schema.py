"""The OpenAPI schema says exactly what the API answers: every error status, error code and
bound the server enforces is declared here once, rather than on each view.

drf-standardized-errors generates each operation's 400 body from its serializer and filter
fields (`required`, `max_length`, ...). What the services refuse beyond those (a closed
appeal window, a batch its maker approves, a state that does not allow the move) and what
every operation of a kind can answer (413 for any body, 409 and 422 for an Idempotency-Key)
is added by `postprocess_error_responses`, from the table in api/error_codes.py and the
operation's kind. The fuzz test (tests/api/test_fuzz.py) fails on a status or code missing
from them.
"""

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiSerializerExtension

from api.error_codes import ERRORS, IDEMPOTENCY_ERRORS, IDEMPOTENCY_HEADER, PAGE_SIZE_ERRORS

DESCRIPTIONS = {
    409: "The object's state does not allow this now, or it collides with another request.",
    413: "The request body is too large.",
    422: "This Idempotency-Key was already used with a different request.",
}


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter's parameters, with the bounds a filter enforces (`min_value`,
    `max_value`) stated as the parameter's minimum and maximum."""

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        bounds = {
            keyword: filter_field.extra[name]
            for keyword, name in (("minimum", "min_value"), ("maximum", "max_value"))
            if filter_field.extra.get(name) is not None
        }
        for parameter in parameters:
            parameter["schema"].update(bounds)
        return parameters


class StrictSerializerExtension(OpenApiSerializerExtension):
    """A StrictSerializer refuses a field it does not know (`unknown_field`) or may not
    write (`read_only`): its request body admits no other properties than its own."""

    target_class = "api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


# Building the schema's error bodies.


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _name(ref: dict) -> str:
    return ref["$ref"].rsplit("/", 1)[1]


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", "_").split("_"))


def _merge(*tables: dict[int, dict[str, list[str]]]) -> dict[int, dict[str, list[str]]]:
    merged: dict[int, dict[str, list[str]]] = {}
    for table in tables:
        for status, attrs in table.items():
            merged.setdefault(status, {})
            for attr, codes in attrs.items():
                known = merged[status].setdefault(attr, [])
                known.extend(code for code in codes if code not in known)
    return merged


def _attr_component(attr: str, codes: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {
            "attr": {"type": "string", "enum": [attr]},
            "code": {"type": "string", "enum": sorted(codes)},
            "detail": {"type": "string"},
        },
        "required": ["attr", "code", "detail"],
    }


def _validation_error(schemas: dict, prefix: str, attrs: dict[str, list[str]]) -> str:
    """A `validation_error` body whose errors name these fields with these codes."""
    items = {"oneOf": [], "discriminator": {"propertyName": "attr", "mapping": {}}}
    for attr, codes in attrs.items():
        name = f"{prefix}{_camel(attr)}ErrorComponent"
        schemas[name] = _attr_component(attr, codes)
        items["oneOf"].append(_ref(name))
        items["discriminator"]["mapping"][attr] = _ref(name)["$ref"]
    schemas[f"{prefix}Error"] = items
    schemas[f"{prefix}ValidationError"] = {
        "type": "object",
        "properties": {
            "type": _ref("ValidationErrorEnum"),
            "errors": {"type": "array", "items": _ref(f"{prefix}Error")},
        },
        "required": ["errors", "type"],
    }
    return f"{prefix}ValidationError"


def _extend_validation_error(schemas: dict, prefix: str, name: str, attrs: dict) -> None:
    """Add codes (and fields) to a generated `validation_error` body."""
    items = schemas[_name(schemas[name]["properties"]["errors"]["items"])]
    mapping = items["discriminator"]["mapping"]
    for attr, codes in attrs.items():
        if attr in mapping:
            code = schemas[mapping[attr].rsplit("/", 1)[1]]["properties"]["code"]
            code["enum"] = sorted(set(code["enum"]) | set(codes))
            code.pop("description", None)
        else:
            component = f"{prefix}{_camel(attr)}ErrorComponent"
            schemas[component] = _attr_component(attr, codes)
            items["oneOf"].append(_ref(component))
            mapping[attr] = _ref(component)["$ref"]


def _one_of_types(schemas: dict, name: str, bodies: list[str]) -> dict:
    """One body, or a choice of bodies told apart by their `type`."""
    if len(bodies) == 1:
        return _ref(bodies[0])
    mapping = {}
    for body in bodies:
        (error_type,) = schemas[_name(schemas[body]["properties"]["type"])]["enum"]
        mapping[error_type] = _ref(body)["$ref"]
    schemas[name] = {
        "oneOf": [_ref(body) for body in bodies],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return _ref(name)


def _bodies_of(schemas: dict, schema: dict) -> list[str]:
    if "$ref" not in schema:
        return []
    target = schemas[_name(schema)]
    if "oneOf" in target:
        return [_name(ref) for ref in target["oneOf"]]
    return [_name(schema)]


def _is_validation_body(schemas: dict, name: str) -> bool:
    kind = schemas[name].get("properties", {}).get("type", {})
    return kind == _ref("ValidationErrorEnum")


# Refusals whose `attr` is whatever the client sent: a field the serializer does not know,
# or the path to any text in the body holding a NUL or a lone surrogate (api.parsers).
ANY_FIELD = {
    "UnknownFieldErrorComponent": ["read_only", "unknown_field"],
    "BadTextErrorComponent": ["null_characters_not_allowed", "surrogate_characters_not_allowed"],
}


def _admit_any_field(schemas: dict, validation: str, component: str) -> None:
    errors = schemas[validation]["properties"]["errors"]
    if "$ref" in errors["items"]:
        errors["items"] = {"anyOf": [errors["items"]]}
    if _ref(component) not in errors["items"]["anyOf"]:
        errors["items"]["anyOf"].append(_ref(component))
    schemas[component] = {
        "type": "object",
        "properties": {
            "attr": {"type": "string"},
            "code": {"type": "string", "enum": ANY_FIELD[component]},
            "detail": {"type": "string"},
        },
        "required": ["attr", "code", "detail"],
    }


def _is_strict(schemas: dict, operation: dict) -> bool:
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" in schema and schemas[_name(schema)].get("additionalProperties") is False:
            return True
    return False


def _declare(schemas, operation, prefix, status: int, attrs: dict[str, list[str]]):
    responses = operation["responses"]
    response = responses.setdefault(str(status), {"description": DESCRIPTIONS.get(status, "")})
    content = response.setdefault("content", {}).setdefault("application/json", {})
    bodies = _bodies_of(schemas, content.get("schema", {}))
    if not bodies and status in GENERIC_BODIES:
        bodies = [GENERIC_BODIES[status]]
    validation = [body for body in bodies if _is_validation_body(schemas, body)]
    if attrs:
        if validation:
            _extend_validation_error(schemas, prefix, validation[0], attrs)
        else:
            validation = [_validation_error(schemas, f"{prefix}{status}", attrs)]
            bodies.append(validation[0])
    if status == 400 and "requestBody" in operation:
        assert validation, f"{prefix}: a request body without a validation error"
        _admit_any_field(schemas, validation[0], "BadTextErrorComponent")
        if _is_strict(schemas, operation):
            _admit_any_field(schemas, validation[0], "UnknownFieldErrorComponent")
    assert bodies, f"declare the codes of {prefix}'s {status} in api.schema.ERRORS"
    content["schema"] = _one_of_types(schemas, f"{prefix}ErrorResponse{status}", bodies)


GENERIC_BODIES = {
    400: "ParseErrorResponse",
    401: "ErrorResponse401",
    403: "ErrorResponse403",
    404: "ErrorResponse404",
    405: "ErrorResponse405",
    406: "ErrorResponse406",
    413: "ErrorResponse413",
    415: "ErrorResponse415",
    500: "ErrorResponse500",
}


def _add_413(schemas: dict) -> None:
    schemas["ErrorCode413Enum"] = {"type": "string", "enum": ["request_too_large"]}
    schemas["Error413"] = {
        "type": "object",
        "properties": {
            "code": _ref("ErrorCode413Enum"),
            "detail": {"type": "string"},
            "attr": {"type": "string", "nullable": True},
        },
        "required": ["attr", "code", "detail"],
    }
    schemas["ErrorResponse413"] = {
        "type": "object",
        "properties": {
            "type": _ref("ClientErrorEnum"),
            "errors": {"type": "array", "items": _ref("Error413")},
        },
        "required": ["errors", "type"],
    }


# DRF's CharField refuses NUL (`null_characters_not_allowed`): a request's free text says
# so. (Lone surrogates, refused too, are no characters a regular expression can name.)
PLAIN_TEXT = r"^[^\x00]*$"


def _plain_text(schema: dict) -> None:
    if schema.get("type") == "string" and not {"enum", "format", "pattern"} & set(schema):
        schema["pattern"] = PLAIN_TEXT
    for value in schema.get("properties", {}).values():
        _plain_text(value)
    if isinstance(schema.get("items"), dict):
        _plain_text(schema["items"])


def postprocess_error_responses(result, generator, request, public):
    schemas = result["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Request"):
            _plain_text(schema)
    _add_413(schemas)
    for path, operations in result["paths"].items():
        for method, operation in operations.items():
            prefix = _camel(operation["operationId"])
            names = {p["name"] for p in operation.get("parameters", [])}
            tables = [ERRORS.get((method.upper(), path), {})]
            if IDEMPOTENCY_HEADER in names:
                tables.append(IDEMPOTENCY_ERRORS)
            if "page_size" in names:
                tables.append(PAGE_SIZE_ERRORS)
            if "requestBody" in operation:
                tables.append({413: {}})
            declared = _merge(*tables)
            for status in sorted({*map(int, operation["responses"]), *declared}):
                if status < 400:
                    continue
                _declare(schemas, operation, prefix, status, declared.get(status, {}))
    return result
