"""Secrets at rest: a Fernet-encrypted text field with key rotation.

A small custom field instead of django-fernet-encrypted-fields: that library derives its key
from SECRET_KEY and hands back the ciphertext when the key is wrong (measured with its current release);
here a wrong key raises SecretDecryptionError.
"""
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from integration.redaction import register_secret


class SecretDecryptionError(Exception):
    """The stored secret cannot be read with any configured key."""


def _fernet():
    keys = settings.HUB_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("HUB_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"HUB_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from None


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        value = _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with HUB_ENCRYPTION_KEYS: the key that encrypted it is missing."
        ) from None
    register_secret(value)
    return value


def rotate(token: str) -> str:
    """Re-encrypt with the first (newest) key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("A stored secret cannot be decrypted with HUB_ENCRYPTION_KEYS.") from None


def encrypted_property(field_name, is_json=False):
    """A model property that reads and writes the ciphertext kept in `field_name`.

    Decryption happens on access, not on load, so a list of stores still renders when a key
    is missing; reading the secret itself raises SecretDecryptionError.
    """

    def fget(obj):
        token = getattr(obj, field_name)
        if not token:
            return {} if is_json else ""
        plain = decrypt(token)
        if not is_json:
            return plain
        data = json.loads(plain)
        for value in data.values():
            register_secret(value)
        return data

    def fset(obj, value):
        if not value:
            setattr(obj, field_name, "")
            return
        setattr(obj, field_name, encrypt(json.dumps(value, sort_keys=True) if is_json else value))

    return property(fget, fset)
