"""The API's request parsers: DRF's, with what may reach a view bounded first.

A JSON body larger than BAEUM_JSON_MAX_BYTES is refused (413) before it is read whole,
and one nested deeper than BAEUM_JSON_MAX_DEPTH before it is parsed: the standard
library's parser recurses once per level and fails with a RecursionError, a 500, near a
thousand. In every body, JSON or form, a NUL or a lone surrogate in any text, a value or
a key, is refused naming the field it was sent for, whatever that field is (choice
fields echo the value they refuse, and a lone surrogate cannot be written as UTF-8), with
the codes DRF's own text fields give.
"""

import itertools
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.settings import api_settings
from rest_framework.utils import json

# A JSON string, escapes included: what is inside one is not structure.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_CHANGE = [0] * 256
for _b in b"[{":
    _DEPTH_CHANGE[_b] = 1
for _b in b"]}":
    _DEPTH_CHANGE[_b] = -1

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_deeper_than(raw: bytes, limit: int) -> bool:
    """Tell whether arrays and objects in the JSON text nest deeper than `limit` (unclosed
    ones count), without parsing it."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    return max(itertools.accumulate(map(_DEPTH_CHANGE.__getitem__, brackets))) > limit


def _text_problem(text: str) -> tuple[str, str] | None:
    if "\x00" in text:
        return "Null characters are not allowed.", "null_characters_not_allowed"
    if not text.isascii() and _SURROGATE.search(text):
        return "Surrogate characters are not allowed.", "surrogate_characters_not_allowed"
    return None


def _refuse(path: tuple[str, ...], problem: tuple[str, str]):
    attr = ".".join(path) or api_settings.NON_FIELD_ERRORS_KEY
    message, code = problem
    return ValidationError({attr: [ErrorDetail(message, code=code)]})


def refuse_bad_text(data) -> None:
    """Raise a ValidationError naming the first field whose text, or name, holds a NUL or
    a lone surrogate; nested fields are named as `training.course_name`, `items.0.name`."""
    pending = [((), data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if problem := _text_problem(value):
                raise _refuse(path, problem)
        elif hasattr(value, "lists"):  # a form's QueryDict: every value of every key
            for key, items in value.lists():
                if problem := _text_problem(key):
                    raise _refuse(path, problem)
                pending.extend(((*path, key), item) for item in items)
        elif isinstance(value, dict):
            for key, item in value.items():
                if problem := _text_problem(key):
                    raise _refuse(path, problem)
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, str(i)), item) for i, item in enumerate(value))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        if encoding.lower().replace("_", "-") not in {"utf-8", "utf8"}:
            # RFC 8259 §8.1: JSON between systems is UTF-8.
            raise ParseError("JSON must be encoded as UTF-8.")
        limit = settings.BAEUM_JSON_MAX_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestDataTooBig(f"A JSON body may be at most {limit} bytes.")  # 413
        if json_deeper_than(raw, settings.BAEUM_JSON_MAX_DEPTH):
            raise ParseError(
                f"JSON nested deeper than {settings.BAEUM_JSON_MAX_DEPTH} levels is not accepted."
            )
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
        refuse_bad_text(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        refuse_bad_text(parsed.data)
        return parsed


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_bad_text(data)
        return data
