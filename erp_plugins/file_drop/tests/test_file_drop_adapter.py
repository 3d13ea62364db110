import json
import os

import pytest

import erp_plugins.file_drop
from erp_plugins.file_drop import adapter as file_drop_module
from erp_plugins.file_drop.adapter import FileDropAdapter
from integration.plugins import PermanentError, SettingsError, TransientError, parse_order

RAW = {
    "orderId": "1500000000002-01",
    "sequence": "500002",
    "status": "ready-for-handling",
    "hostname": "luxstore",
    "value": 1500,
    "items": [{"id": "7", "name": "Dog food", "quantity": 3, "price": 500, "sellingPrice": 500}],
    "totals": [{"id": "Items", "value": 1500}],
}


def make_adapter(directory, **settings):
    return FileDropAdapter(FileDropAdapter.validate_settings({"directory": str(directory), **settings}))


def visible_files(directory):
    return sorted(os.listdir(directory))


def test_builtin_plugin_hook_returns_the_adapter():
    assert erp_plugins.file_drop.erp_adapters() == [FileDropAdapter]


def test_settings_validation(tmp_path):
    cleaned = FileDropAdapter.validate_settings({"directory": str(tmp_path)})
    assert cleaned == {"directory": str(tmp_path), "filename_template": "{account}-{order_id}-{action}.json",
                       "inbox_enabled": False, "inbox_directory": "", "inbox_settle_seconds": 2}
    with pytest.raises(SettingsError) as info:
        FileDropAdapter.validate_settings({"directory": "relative/dir", "filename_template": "{order_id}.json"})
    assert set(info.value.errors) == {"directory", "filename_template"}
    assert "{action}" in info.value.errors["filename_template"]
    bad_templates = ["{customer}-{order_id}-{action}.json", "../{order_id}-{action}", "sub/{order_id}-{action}",
                     "{order_id!r}-{action}", "{order_id:>20}-{action}", "{order_id-{action}", ".{order_id}-{action}"]
    for template in bad_templates:
        with pytest.raises(SettingsError) as info:
            FileDropAdapter.validate_settings({"directory": str(tmp_path), "filename_template": template})
        assert "filename_template" in info.value.errors, template
    with pytest.raises(SettingsError) as info:
        FileDropAdapter.validate_settings({})
    assert info.value.errors == {"directory": "This field is required."}


def test_send_writes_json_named_by_account_order_action(tmp_path):
    target = tmp_path / "drop" / "orders"  # created if missing
    delivery = make_adapter(target).send_order(parse_order(RAW), RAW, "idem-send-1")
    path = target / "luxstore-1500000000002-01-send.json"
    assert visible_files(target) == [path.name]
    document = json.loads(path.read_text("utf-8"))
    assert document["event"] == "order.send"
    assert document["idempotency_key"] == "idem-send-1"
    assert document["account"] == "luxstore"
    assert document["order"]["order_id"] == "1500000000002-01"
    assert document["order"]["items"][0]["total"] == "15.00"
    assert document["vtex_order"] == RAW
    assert str(path) in delivery.detail
    assert "idem-send-1" in delivery.request_excerpt
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_injected_account_wins_over_hostname(tmp_path):
    adapter = FileDropAdapter({**FileDropAdapter.validate_settings({"directory": str(tmp_path)}), "_account": "mainstore"})
    adapter.send_order(parse_order(RAW), RAW, "k")
    assert visible_files(tmp_path) == ["mainstore-1500000000002-01-send.json"]


def test_no_account_name_is_permanent(tmp_path):
    raw = {k: v for k, v in RAW.items() if k != "hostname"}
    with pytest.raises(PermanentError):
        make_adapter(tmp_path).send_order(parse_order(raw), raw, "k")
    # A template without {account} does not need one.
    make_adapter(tmp_path, filename_template="{order_id}_{action}.json").send_order(parse_order(raw), raw, "k")
    assert visible_files(tmp_path) == ["1500000000002-01_send.json"]


def test_unsafe_characters_in_names_are_replaced(tmp_path):
    raw = {**RAW, "orderId": "../../etc/passwd", "hostname": "a/b"}
    make_adapter(tmp_path).send_order(parse_order(raw), raw, "k")
    assert visible_files(tmp_path) == ["a_b-.._.._etc_passwd-send.json"]


def test_retry_rewrites_the_same_file(tmp_path):
    adapter = make_adapter(tmp_path)
    order = parse_order(RAW)
    adapter.send_order(order, RAW, "first")
    adapter.send_order(order, RAW, "second")
    assert visible_files(tmp_path) == ["luxstore-1500000000002-01-send.json"]
    assert json.loads((tmp_path / "luxstore-1500000000002-01-send.json").read_text())["idempotency_key"] == "second"


def test_cancel_writes_a_separate_file(tmp_path):
    adapter = make_adapter(tmp_path)
    order = parse_order(RAW)
    adapter.send_order(order, RAW, "k1")
    adapter.cancel_order(order, RAW, "k2")
    assert visible_files(tmp_path) == ["luxstore-1500000000002-01-cancel.json", "luxstore-1500000000002-01-send.json"]
    cancel = json.loads((tmp_path / "luxstore-1500000000002-01-cancel.json").read_text())
    assert cancel["event"] == "order.cancel"


def test_status_is_not_supported(tmp_path):
    with pytest.raises(PermanentError) as info:
        make_adapter(tmp_path).status_changed(parse_order(RAW), RAW, "invoiced", "k")
    assert "does not support action status" in info.value.message


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, failing):
    adapter = make_adapter(tmp_path)
    order = parse_order(RAW)
    adapter.send_order(order, RAW, "good")
    final = tmp_path / "luxstore-1500000000002-01-send.json"
    before = final.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_drop_module.os, failing, boom)
    with pytest.raises(TransientError) as info:
        adapter.send_order(order, RAW, "bad")
    monkeypatch.undo()
    assert "No space left on device" in info.value.message
    assert visible_files(tmp_path) == [final.name]  # no temporary file left behind
    assert final.read_bytes() == before


def test_bad_directory_is_transient_and_writes_nothing(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(TransientError):
        make_adapter(blocker / "orders").send_order(parse_order(RAW), RAW, "k")
    with pytest.raises(TransientError):
        make_adapter(blocker).send_order(parse_order(RAW), RAW, "k")
    assert visible_files(tmp_path) == ["not-a-dir"]


def test_check_connection(tmp_path):
    assert "writable" in make_adapter(tmp_path / "new").check_connection()
    assert visible_files(tmp_path / "new") == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TransientError):
        make_adapter(blocker).check_connection()
