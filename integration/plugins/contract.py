"""What an ERP/WMS adapter is: the contract between the hub and every adapter plugin.

An adapter receives a parsed order (money as Decimal), the raw VTEX JSON and a stable
idempotency key, and either returns a `Delivery` or raises a `TransientError` (retry later) or a
`PermanentError` (retrying cannot help; the operator must look). Anything else an adapter raises
is treated by the dispatcher as transient.
"""
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from integration.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from integration.plugins.parsed_order import ParsedOrder

SEND, CANCEL, STATUS = "send", "cancel", "status"
ACTIONS = (SEND, CANCEL, STATUS)
# Capabilities are what an adapter does besides the per-order actions above. UPDATES: it carries
# invoices, tracking and cancellations back from the ERP (`poll_updates`, see updates.py).
UPDATES = "updates"
CAPABILITIES = (UPDATES,)
SETTING_TYPES = frozenset({"str", "int", "bool", "url", "path", "choice"})

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})
_INT = re.compile(r"[+-]?\d{1,18}")


class AdapterError(Exception):
    """Base of the errors an adapter raises. `permanent` tells the dispatcher whether to retry."""

    permanent = False

    def __init__(self, message, *, request_excerpt="", response_excerpt=""):
        # Redacted here too: an adapter author may forget, and these end up in the admin.
        self.message = redact(str(message))
        self.request_excerpt = request_excerpt or ""
        self.response_excerpt = response_excerpt or ""
        super().__init__(self.message)

    def __str__(self):
        return self.message


class TransientError(AdapterError):
    """The ERP is down, slow or rate-limiting: the same call may work later."""

    permanent = False


class PermanentError(AdapterError):
    """The ERP refused the order, or the adapter is misconfigured: retrying will not help."""

    permanent = True


class PluginUnavailable(ImportError):
    """Raised by a plugin module on import when an optional dependency is missing.

    The hub lists the plugin as unavailable with this message (not as a load error), e.g.
    "needs the 'amqp' extra: pip install 'vtex-order-hub[amqp]' (No module named 'pika')".
    """


class SettingsError(Exception):
    """Adapter settings did not validate. `errors` maps a field name to a human message."""

    def __init__(self, errors):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class Setting:
    """One field of an adapter's configuration form."""

    name: str
    label: str = ""
    type: str = "str"  # "str" | "int" | "bool" | "url" | "path" | "choice"
    default: object = None
    required: bool = False
    secret: bool = False
    help: str = ""
    choices: tuple = ()  # values, or (value, label) pairs

    def __post_init__(self):
        if self.type not in SETTING_TYPES:
            raise ValueError(f"setting {self.name!r}: unknown type {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"setting {self.name!r}: a choice setting needs choices")

    @property
    def choice_values(self):
        return tuple(c[0] if isinstance(c, (tuple, list)) else c for c in self.choices)

    def display_label(self):
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass
class Delivery:
    """What an adapter returns when the ERP accepted the order (or the action)."""

    reference: str = ""  # the ERP's id for the order, if any
    request_excerpt: str = ""
    response_excerpt: str = ""
    detail: str = ""


def _is_blank(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def _empty_value(setting):
    if setting.type == "bool":
        return False
    if setting.type == "int":
        return None
    return ""


def coerce_setting(setting, value):
    """Return the cleaned value or raise ValueError with a human message."""
    kind = setting.type
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("Enter a whole number.")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value.strip())
        raise ValueError("Enter a whole number.")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise ValueError("Enter yes or no (true/false, on/off, 1/0).")
    if not isinstance(value, str):
        if kind == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError("Enter text.")
    value = value.strip()
    if kind == "url":
        if any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("Enter a valid URL without spaces.")
        try:
            parts = urlsplit(value)
            parts.port  # raises ValueError on a bad port
        except ValueError:
            raise ValueError("Enter a valid http or https URL.") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("Enter a valid http or https URL (with a host).")
        return value
    if kind == "path":
        if "\x00" in value or not os.path.isabs(value):
            raise ValueError("Enter an absolute path.")
        return value
    if kind == "choice":
        for choice in setting.choice_values:
            if value == str(choice):
                return choice
        raise ValueError("Choose one of: " + ", ".join(str(c) for c in setting.choice_values) + ".")
    return value


class Adapter:
    """Base class of every ERP/WMS adapter. See docs/developers/adapter-plugins.md."""

    key: ClassVar[str]
    label: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]] = ()
    actions: ClassVar[frozenset[str]] = frozenset({SEND})
    capabilities: ClassVar[frozenset[str]] = frozenset()  # a subset of CAPABILITIES

    def __init__(self, config: dict):
        self.config = config  # cleaned settings, secrets in plain text

    # --- settings -----------------------------------------------------------------------------
    @classmethod
    def validate_settings(cls, raw: dict) -> dict:
        """Apply defaults, coerce by type, check required fields and the adapter's own rules.

        Collects every bad field, then raises SettingsError({field: message}). Unknown keys are
        dropped. Subclasses usually override `check_settings` instead; overriding this and
        calling super() works too.
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise SettingsError({"__all__": "Settings must be a mapping of field name to value."})
        cleaned, errors = {}, {}
        for setting in cls.settings:
            value = raw.get(setting.name)
            if _is_blank(value):
                if setting.default is not None:
                    value = setting.default
                elif setting.required:
                    errors[setting.name] = "This field is required."
                    continue
                else:
                    cleaned[setting.name] = _empty_value(setting)
                    continue
            try:
                cleaned[setting.name] = coerce_setting(setting, value)
            except ValueError as exc:
                errors[setting.name] = str(exc)
        if not errors:
            errors.update(cls.check_settings(cleaned) or {})
        else:
            # Still run the adapter's own checks on the fields that did coerce, so the operator
            # sees every problem at once.
            partial = {k: v for k, v in cleaned.items() if k not in errors}
            try:
                extra = cls.check_settings(partial) or {}
            except (KeyError, TypeError, ValueError):
                extra = {}
            for name, message in extra.items():
                errors.setdefault(name, message)
        if errors:
            raise SettingsError(errors)
        return cleaned

    @classmethod
    def check_settings(cls, cleaned: dict) -> dict[str, str]:
        """Adapter-specific checks on coerced settings; return {field: message} for bad ones.

        Called by validate_settings. `cleaned` may lack fields that failed coercion.
        """
        return {}

    @classmethod
    def secret_setting_names(cls) -> set[str]:
        return {s.name for s in cls.settings if s.secret}

    @classmethod
    def supports(cls, action: str) -> bool:
        """True for an action (send, cancel, status) or a capability (updates) this adapter has."""
        return action in cls.actions or action in cls.capabilities

    # --- actions ------------------------------------------------------------------------------
    def check_connection(self) -> str:
        """Return a human message on success; raise AdapterError on failure."""
        return "No connection check for this adapter."

    def send_order(self, order: "ParsedOrder", raw: dict, idempotency_key: str) -> Delivery:
        raise self._unsupported(SEND)

    def cancel_order(self, order: "ParsedOrder", raw: dict, idempotency_key: str) -> Delivery:
        raise self._unsupported(CANCEL)

    def status_changed(self, order: "ParsedOrder", raw: dict, state: str, idempotency_key: str) -> Delivery:
        raise self._unsupported(STATUS)

    def perform(self, action: str, order, raw: dict, idempotency_key: str, state: str = "") -> Delivery:
        """Call the method for `action`; unsupported actions raise PermanentError."""
        if action not in self.actions:
            raise self._unsupported(action)
        if action == SEND:
            return self.send_order(order, raw, idempotency_key)
        if action == CANCEL:
            return self.cancel_order(order, raw, idempotency_key)
        if action == STATUS:
            return self.status_changed(order, raw, state, idempotency_key)
        raise self._unsupported(action)

    def poll_updates(self, receive) -> int:
        """The way back (capability UPDATES): read what the ERP left (a queue, a folder), call
        `receive(InboundUpdate)` for each, acknowledge only what was accepted, and return how
        many were handled. `receive` stores the update before it returns an UpdateReceipt."""
        raise self._unsupported(UPDATES)

    def close(self) -> None:
        """Release resources (HTTP sessions, files). The dispatcher calls it when done."""

    def _unsupported(self, action):
        return PermanentError(f"adapter {getattr(self, 'key', type(self).__name__)} does not support action {action}")
