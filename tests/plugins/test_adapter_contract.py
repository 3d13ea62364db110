"""The Adapter base class: settings validation, errors, unsupported actions."""
import pytest

from integration.plugins import CANCEL, SEND, STATUS, Adapter, Delivery, Setting
from integration.plugins.contract import AdapterError, PermanentError, SettingsError, TransientError
from integration.plugins.parsed_order import parse_order
from integration.redaction import register_secret


class Everything(Adapter):
    key = "everything"
    label = "Every setting type"
    settings = (
        Setting("name", required=True),
        Setting("count", type="int", default=5),
        Setting("enabled", type="bool"),
        Setting("endpoint", type="url"),
        Setting("folder", type="path"),
        Setting("mode", type="choice", choices=(("fast", "Fast"), ("safe", "Safe")), default="safe"),
        Setting("password", secret=True),
    )

    @classmethod
    def check_settings(cls, cleaned):
        if cleaned.get("name") == "forbidden":
            return {"name": "This name is not allowed."}
        return {}


def test_defaults_coercion_and_unknown_keys():
    cleaned = Everything.validate_settings({
        "name": " shop ", "count": "12", "enabled": "on", "endpoint": "https://erp.example.com:8443/x",
        "folder": "/srv/drop", "mode": "fast", "password": "p", "unknown": "dropped",
    })
    assert cleaned == {
        "name": "shop", "count": 12, "enabled": True, "endpoint": "https://erp.example.com:8443/x",
        "folder": "/srv/drop", "mode": "fast", "password": "p",
    }
    minimal = Everything.validate_settings({"name": "x"})
    assert minimal == {"name": "x", "count": 5, "enabled": False, "endpoint": "", "folder": "", "mode": "safe",
                       "password": ""}


@pytest.mark.parametrize("raw,expected", [
    ("true", True), ("ON", True), ("yes", True), ("1", True), (True, True), (1, True),
    ("false", False), ("off", False), ("0", False), ("no", False), (False, False), (0, False),
])
def test_bool_coercion(raw, expected):
    assert Everything.validate_settings({"name": "x", "enabled": raw})["enabled"] is expected


def test_all_bad_fields_are_reported_together():
    with pytest.raises(SettingsError) as info:
        Everything.validate_settings({
            "count": "12.5", "enabled": "maybe", "endpoint": "mailto:a@b.c", "folder": "relative", "mode": "slow",
        })
    assert set(info.value.errors) == {"name", "count", "enabled", "endpoint", "folder", "mode"}
    assert info.value.errors["name"] == "This field is required."
    assert "fast, safe" in info.value.errors["mode"]
    assert "count:" in str(info.value)


def test_adapter_checks_run_too():
    with pytest.raises(SettingsError) as info:
        Everything.validate_settings({"name": "forbidden"})
    assert info.value.errors == {"name": "This name is not allowed."}
    with pytest.raises(SettingsError) as info:
        Everything.validate_settings({"name": "forbidden", "count": "many"})
    assert set(info.value.errors) == {"name", "count"}
    with pytest.raises(SettingsError):
        Everything.validate_settings(["not", "a", "dict"])


def test_bool_and_int_are_not_confused():
    with pytest.raises(SettingsError):
        Everything.validate_settings({"name": "x", "count": True})
    with pytest.raises(SettingsError):
        Everything.validate_settings({"name": "x", "enabled": 2})


def test_secret_setting_names():
    assert Everything.secret_setting_names() == {"password"}
    assert Adapter.secret_setting_names() == set()


def test_setting_rejects_unknown_types():
    with pytest.raises(ValueError):
        Setting("x", type="float")
    with pytest.raises(ValueError):
        Setting("x", type="choice")


def test_unsupported_actions_are_permanent():
    adapter = Everything({})
    order = parse_order({"orderId": "7-01", "items": [{"id": "1", "quantity": 1}]})
    assert adapter.check_connection() == "No connection check for this adapter."
    for call in (lambda: adapter.send_order(order, {}, "k"), lambda: adapter.cancel_order(order, {}, "k"),
                 lambda: adapter.status_changed(order, {}, "invoiced", "k"),
                 lambda: adapter.perform(CANCEL, order, {}, "k")):
        with pytest.raises(PermanentError) as info:
            call()
        assert "adapter everything does not support action" in info.value.message


def test_perform_dispatches_to_the_action_method():
    class Both(Adapter):
        key = "both"
        label = "Both"
        actions = frozenset({SEND, STATUS})

        def send_order(self, order, raw, idempotency_key):
            return Delivery(reference=f"sent:{idempotency_key}")

        def status_changed(self, order, raw, state, idempotency_key):
            return Delivery(reference=f"{state}:{idempotency_key}")

    order = parse_order({"orderId": "7-01", "items": [{"id": "1", "quantity": 1}]})
    assert Both({}).perform(SEND, order, {}, "k1").reference == "sent:k1"
    assert Both({}).perform(STATUS, order, {}, "k2", state="invoiced").reference == "invoiced:k2"
    assert Both.supports(SEND) and not Both.supports(CANCEL)


def test_errors_keep_excerpts_and_redact_known_secrets():
    register_secret("hunter2-very-secret")
    error = TransientError("ERP said: bad token hunter2-very-secret", request_excerpt="req", response_excerpt="resp")
    assert error.message == "ERP said: bad token [redacted]"
    assert str(error) == error.message
    assert (error.request_excerpt, error.response_excerpt) == ("req", "resp")
    assert not error.permanent and PermanentError("x").permanent
    assert isinstance(error, AdapterError)
