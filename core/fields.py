"""A model field that stores text encrypted at rest and hands plaintext to model code."""

from django.core.exceptions import FieldError, ValidationError
from django.db import models

from core.crypto import VERSION, DecryptionError, decrypt, encrypt


class EncryptedTextField(models.TextField):
    """Text encrypted with AES-GCM for one purpose; only isnull lookups are allowed."""

    description = "Text encrypted at rest"

    def __init__(self, *args, purpose: str, **kwargs):
        if not purpose:
            raise TypeError("EncryptedTextField needs a non-empty purpose")
        self.purpose = purpose
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    def _refuse(self, name: str):
        # Each encryption draws a fresh nonce, so equal plaintexts never match in SQL.
        owner = f"{self.model.__name__}." if hasattr(self, "model") else ""
        raise FieldError(
            f"{owner}{self.name} is encrypted and supports only the isnull lookup, "
            f"not {name!r}; match on its keyed-hash column instead."
        )

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            self._refuse(lookup_name)
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name):
        self._refuse(lookup_name)

    def get_prep_value(self, value):
        # Field.get_prep_value, not TextField's: that one would run to_python and decrypt.
        value = models.Field.get_prep_value(self, value)
        if value is None or value == "":
            return value
        return encrypt(str(value), purpose=self.purpose)

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value, purpose=self.purpose)

    def to_python(self, value):
        if value is None or value == "":
            return value
        value = str(value)
        if not value.startswith(f"{VERSION}:"):
            return value
        try:
            return decrypt(value, purpose=self.purpose)
        except DecryptionError:
            raise ValidationError("This value cannot be decrypted.", code="invalid") from None
