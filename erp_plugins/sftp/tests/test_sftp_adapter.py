"""The sftp adapter against a real OpenSSH server: atomic uploads, JSON and CSV, host key pinning,
password and key login, permissions, the connection check and the inbound folder."""
import csv
import io
import json
import os
import socket
import subprocess
import threading

import pytest

import erp_plugins.sftp
from erp_plugins.sftp.adapter import CSV_COLUMNS, POOL, SftpAdapter
from integration.plugins import UPDATES, PermanentError, SettingsError, TransientError, parse_order
from tests.recording import UpdateReceiver as Recorder

pytestmark = pytest.mark.slow  # a real sshd

RAW = {
    "orderId": "1500000000007-01",
    "sequence": "500007",
    "status": "ready-for-handling",
    "value": 2300,
    "clientProfileData": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Silva, Jr."},
    "shippingData": {"address": {"receiverName": "Ana", "street": "Rua A", "number": "10", "city": "São Paulo",
                                 "state": "SP", "postalCode": "01000-000", "country": "BRA"}},
    "items": [{"id": "7", "name": "Dog food", "quantity": 3, "price": 500, "sellingPrice": 500},
              {"id": "8", "name": "Cat \"toy\"", "quantity": 1, "price": 800, "sellingPrice": 800}],
    "totals": [{"id": "Items", "value": 2300}],
}
ORDER = parse_order(RAW)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def adapter_for(server, folder, **settings):
    values = {"host": server.host, "port": server.port, "username": server.user,
              "host_key_fingerprint": server.fingerprint, "password": server.password,
              "remote_directory": str(folder), **settings}
    config = SftpAdapter.validate_settings(values)
    config["_account"] = "luxstore"
    return SftpAdapter(config)


def visible(folder):
    return sorted(p.name for p in folder.iterdir())


# --- registration and settings --------------------------------------------------------------------
def test_the_builtin_plugin_provides_the_adapter():
    assert erp_plugins.sftp.erp_adapters() == [SftpAdapter]
    assert SftpAdapter.supports(UPDATES)
    assert SftpAdapter.secret_setting_names() == {"password", "private_key", "private_key_passphrase"}


def test_settings_validation_names_each_bad_field():
    base = {"host": "sftp.example.com", "username": "hub", "remote_directory": "/out",
            "host_key_fingerprint": "SHA256:" + "A" * 43, "password": "pw-123456"}
    cleaned = SftpAdapter.validate_settings(base)
    assert cleaned["file_format"] == "json" and cleaned["port"] == 22
    assert cleaned["filename_template"] == "{account}-{order_id}-{action}.{ext}"
    with pytest.raises(SettingsError) as info:
        SftpAdapter.validate_settings({**base, "host_key_fingerprint": "aa:bb:cc", "password": "",
                                       "filename_template": "{order_id}.tmp", "file_format": "xml",
                                       "private_key": "not a key", "settle_seconds": 99})
    assert set(info.value.errors) == {"host_key_fingerprint", "filename_template", "file_format", "private_key",
                                      "settle_seconds"}
    with pytest.raises(SettingsError) as info:
        SftpAdapter.validate_settings({**base, "password": ""})
    assert info.value.errors == {"password": "Enter a password or a private key."}
    with pytest.raises(SettingsError) as info:
        SftpAdapter.validate_settings({})
    assert {"host", "username", "host_key_fingerprint", "remote_directory"} <= set(info.value.errors)


# --- out ------------------------------------------------------------------------------------------
def test_an_order_becomes_one_json_file_with_a_password_login(ssh_server):
    folder = ssh_server.folder("out")
    adapter = adapter_for(ssh_server, folder)
    try:
        delivery = adapter.send_order(ORDER, RAW, "key-send-1")
        adapter.cancel_order(ORDER, RAW, "key-cancel-1")
    finally:
        adapter.close()
    assert visible(folder) == ["luxstore-1500000000007-01-cancel.json", "luxstore-1500000000007-01-send.json"]
    document = json.loads((folder / "luxstore-1500000000007-01-send.json").read_text("utf-8"))
    assert document["event"] == "order.send" and document["idempotency_key"] == "key-send-1"
    assert document["order"]["value"] == "23.00" and document["vtex_order"] == RAW
    assert delivery.reference == "luxstore-1500000000007-01-send.json" and "renamed into place" in delivery.response_excerpt
    assert (folder / "luxstore-1500000000007-01-send.json").stat().st_uid == ssh_server.uid


def test_csv_has_one_line_per_item_with_the_documented_columns_and_a_key_login(ssh_server):
    folder = ssh_server.folder("csv")
    adapter = adapter_for(ssh_server, folder, password="", private_key=ssh_server.client_key, file_format="csv",
                          filename_template="{order_id}_{action}.{ext}")
    adapter.send_order(ORDER, RAW, "key-csv")
    adapter.close()
    assert visible(folder) == ["1500000000007-01_send.csv"]
    rows = list(csv.DictReader(io.StringIO((folder / "1500000000007-01_send.csv").read_text("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["sku"], r["quantity"], r["unit_price"], r["item_total"]) for r in rows] == [
        ("7", "3", "5.00", "15.00"), ("8", "1", "8.00", "8.00")]
    assert {r["order_id"] for r in rows} == {"1500000000007-01"} and rows[1]["item_name"] == 'Cat "toy"'
    assert rows[0]["customer_last_name"] == "Silva, Jr." and rows[0]["city"] == "São Paulo"
    assert rows[0]["order_value"] == "23.00" and rows[0]["idempotency_key"] == "key-csv"


def test_a_private_key_pasted_on_one_line_still_works(ssh_server):
    folder = ssh_server.folder("oneline")
    one_line = " ".join(ssh_server.client_key.split())  # what a single-line password field leaves
    adapter = adapter_for(ssh_server, folder, password="", private_key=one_line)
    adapter.send_order(ORDER, RAW, "key-1")
    adapter.close()
    assert visible(folder) == ["luxstore-1500000000007-01-send.json"]


def test_a_retry_replaces_the_same_file(ssh_server):
    folder = ssh_server.folder("retry")
    adapter = adapter_for(ssh_server, folder)
    adapter.send_order(ORDER, RAW, "key-1")
    adapter.send_order(ORDER, {**RAW, "sequence": "changed"}, "key-1")
    adapter.close()
    assert visible(folder) == ["luxstore-1500000000007-01-send.json"]
    assert json.loads((folder / visible(folder)[0]).read_text())["vtex_order"]["sequence"] == "changed"


def test_a_dispatch_batch_reuses_one_ssh_session_across_adapters(ssh_server):
    folder = ssh_server.folder("batch")
    sessions = set()
    for n in range(4):  # as the dispatcher does: build, deliver, close, per order
        adapter = adapter_for(ssh_server, folder)
        raw = {**RAW, "orderId": f"600{n}-01"}
        adapter.send_order(parse_order(raw), raw, f"key-{n}")
        sessions.add(id(adapter._transport))
        adapter.close()
    assert len(sessions) == 1 and POOL.idle_count() == 1
    assert len(visible(folder)) == 4
    transport, _ = POOL.take(adapter._pool_key, max_idle=30)
    transport.close()  # the server side went away while idle
    POOL.give(adapter._pool_key, (transport, _))
    assert POOL.idle_count() == 0  # a dead session is not kept
    adapter = adapter_for(ssh_server, folder)
    adapter.send_order(ORDER, RAW, "key-after")  # a new session
    adapter.close()
    assert "luxstore-1500000000007-01-send.json" in visible(folder)


def test_the_receiving_side_never_sees_half_a_file(ssh_server):
    folder = ssh_server.folder("atomic")
    raw = {**RAW, "customData": {"blob": "x" * 4_000_000}}  # big enough that the upload takes a while
    final = "luxstore-1500000000007-01-send.json"
    seen_final_sizes, seen_temp, done = [], [], threading.Event()

    def watch():  # the ERP polling the folder as fast as it can
        while not done.is_set():
            for entry in os.scandir(folder):
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:
                    continue
                (seen_final_sizes if entry.name == final else seen_temp).append((entry.name, size))

    watcher = threading.Thread(target=watch)
    watcher.start()
    adapter = adapter_for(ssh_server, folder)
    try:
        adapter.send_order(parse_order(raw), raw, "key-big")
    finally:
        done.set()
        watcher.join()
        adapter.close()
    size = (folder / final).stat().st_size
    assert size > 4_000_000
    assert seen_temp and all(name.startswith(".") and name.endswith(".tmp") for name, _ in seen_temp)
    assert {s for _, s in seen_final_sizes} <= {size}  # the final name only ever had the whole file
    assert visible(folder) == [final]


def test_a_wrong_host_key_is_refused_before_logging_in(ssh_server):
    folder = ssh_server.folder("hostkey")
    # A wrong password too: the error is the host key's, so the login was never tried.
    adapter = adapter_for(ssh_server, folder, host_key_fingerprint=ssh_server.other_fingerprint, password="wrong-pw-1")
    with pytest.raises(PermanentError) as info:
        adapter.send_order(ORDER, RAW, "key-1")
    assert ssh_server.fingerprint in str(info.value) and ssh_server.other_fingerprint in str(info.value)
    assert "refused" in str(info.value)
    with pytest.raises(PermanentError):
        adapter.check_connection()
    assert visible(folder) == []


def test_a_wrong_password_is_a_permanent_error_that_never_shows_the_password(ssh_server):
    adapter = adapter_for(ssh_server, ssh_server.folder("pw"), password="wrong-password-42")
    with pytest.raises(PermanentError) as info:
        adapter.send_order(ORDER, RAW, "key-1")
    assert f"refused the login of user {ssh_server.user!r}: check the password" in str(info.value)
    assert "wrong-password-42" not in str(info.value) + info.value.request_excerpt


def test_a_read_only_remote_folder_is_a_permanent_error_and_leaves_nothing_behind(ssh_server):
    folder = ssh_server.folder("readonly")
    folder.chmod(0o555)
    adapter = adapter_for(ssh_server, folder)
    with pytest.raises(PermanentError) as info:
        adapter.send_order(ORDER, RAW, "key-1")
    assert f"has no permission to write in {str(folder)!r}" in str(info.value)
    with pytest.raises(PermanentError) as info:
        adapter.check_connection()
    assert "no permission to write" in str(info.value)
    assert visible(folder) == []


@pytest.fixture
def full_folder(ssh_server):
    """A remote folder on a 64 KiB tmpfs: a real 'disk full'."""
    folder = ssh_server.folder("full")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=64k,uid={ssh_server.uid},gid={ssh_server.gid}",
                              "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_remote_folder_is_transient_and_leaves_nothing_behind(ssh_server, full_folder):
    raw = {**RAW, "customData": {"blob": "x" * 200_000}}
    adapter = adapter_for(ssh_server, full_folder)
    with pytest.raises(TransientError) as info:
        adapter.send_order(parse_order(raw), raw, "key-big")
    assert "disk full or quota?" in str(info.value)
    assert visible(full_folder) == []  # the temporary file was removed
    adapter = adapter_for(ssh_server, full_folder)
    adapter.send_order(ORDER, RAW, "key-small")  # there is room for a normal order
    adapter.close()
    assert visible(full_folder) == ["luxstore-1500000000007-01-send.json"]


def test_a_missing_remote_folder_says_so(ssh_server):
    missing = ssh_server.home / "no-such-folder"
    with pytest.raises(PermanentError) as info:
        adapter_for(ssh_server, missing).send_order(ORDER, RAW, "key-1")
    assert f"the folder {str(missing)!r} does not exist" in str(info.value)


def test_check_connection_reports_what_it_found_and_what_is_wrong(ssh_server):
    folder, inbound = ssh_server.folder("check"), ssh_server.folder("in")
    (inbound / "a.json").write_text("{}")
    message = adapter_for(ssh_server, folder, inbound_directory=str(inbound)).check_connection()
    assert f"host key {ssh_server.fingerprint} verified" in message
    assert "is writable" in message and "has 1 file(s) waiting" in message
    assert visible(folder) == []  # the probe is gone
    for settings, words in [({"port": free_port()}, "refused the connection"),
                            ({"host": "no-such-host.invalid"}, "does not resolve")]:
        with pytest.raises(TransientError) as info:
            adapter_for(ssh_server, folder, **settings).check_connection()
        assert words in str(info.value)
    with pytest.raises(PermanentError) as info:
        adapter_for(ssh_server, folder, inbound_directory=str(inbound / "nope")).check_connection()
    assert "the inbound folder" in str(info.value) and "does not exist" in str(info.value)


# --- the way back ---------------------------------------------------------------------------------
def update_file(folder, name, order_id, kind="invoice", **extra):
    body = {"invoiceNumber": f"NF-{order_id}", "invoiceValue": 1500, "issuanceDate": "2026-12-01", "items": []}
    path = folder / name
    path.write_text(json.dumps({"kind": kind, "orderId": order_id, "body": body, **extra}))
    return path


def test_inbound_files_are_stored_then_moved_and_bad_ones_rejected_with_a_reason(ssh_server):
    folder, inbound = ssh_server.folder("out"), ssh_server.folder("inbound")
    os.chown(inbound, ssh_server.uid, ssh_server.gid)
    update_file(inbound, "inv-1.json", "3001-01")
    update_file(inbound, "trk-1.json", "3002-01", kind="tracking", invoiceNumber="NF-9")
    update_file(inbound, "refused.json", "3003-01")
    (inbound / "broken.json").write_text('{"kind": "invoice", "orderId": ')
    update_file(inbound, ".upload-in-progress.json", "3004-01")
    update_file(inbound, "inv-2.json.tmp", "3005-01")
    receive = Recorder(refuse={"3003-01"})
    adapter = adapter_for(ssh_server, folder, inbound_directory=str(inbound), settle_seconds=0)
    assert adapter.poll_updates(receive) == 4
    assert adapter.poll_updates(receive) == 0  # nothing comes back
    adapter.close()
    assert [(u.kind, u.order_id, u.invoice_number) for u in receive.updates] == [
        ("invoice", "3001-01", None), ("invoice", "3003-01", None), ("tracking", "3002-01", "NF-9")]
    assert receive.updates[0].source == f"sftp file {inbound}/inv-1.json"
    assert visible(inbound) == [".upload-in-progress.json", "inv-2.json.tmp", "processed", "rejected"]
    assert visible(inbound / "processed") == ["inv-1.json", "trk-1.json"]
    assert visible(inbound / "rejected") == ["broken.json", "broken.json.reason.txt", "refused.json",
                                             "refused.json.reason.txt"]
    assert "not JSON" in (inbound / "rejected" / "broken.json.reason.txt").read_text()
    assert "body.invoiceValue" in (inbound / "rejected" / "refused.json.reason.txt").read_text()


def test_a_file_still_being_written_is_left_for_the_next_poll(ssh_server):
    folder, inbound = ssh_server.folder("out"), ssh_server.folder("inbound")
    growing = inbound / "inv-growing.json"
    document = json.dumps({"kind": "invoice", "orderId": "4001-01",
                           "body": {"invoiceNumber": "NF-1", "note": "y" * 2000}}).encode()
    growing.write_bytes(document[:20])
    stop, written = threading.Event(), [20]

    def upload_slowly():  # the ERP's upload, a few bytes at a time
        with open(growing, "ab") as fh:
            while not stop.is_set() and written[0] < len(document) - 10:
                fh.write(document[written[0]:written[0] + 5])
                fh.flush()
                written[0] += 5
                stop.wait(0.05)

    writer = threading.Thread(target=upload_slowly)
    writer.start()
    receive = Recorder()
    adapter = adapter_for(ssh_server, folder, inbound_directory=str(inbound), settle_seconds=1)
    try:
        assert adapter.poll_updates(receive) == 0
    finally:
        stop.set()
        writer.join()
    assert receive.updates == [] and visible(inbound) == ["inv-growing.json"]  # not rejected as broken JSON
    with open(growing, "ab") as fh:
        fh.write(document[written[0]:])
    assert adapter.poll_updates(receive) == 1
    adapter.close()
    assert [u.order_id for u in receive.updates] == ["4001-01"]
    assert visible(inbound / "processed") == ["inv-growing.json"]


def test_a_file_the_hub_could_not_store_stays_for_the_next_poll(ssh_server):
    folder, inbound = ssh_server.folder("out"), ssh_server.folder("inbound")
    update_file(inbound, "inv.json", "5001-01")
    adapter = adapter_for(ssh_server, folder, inbound_directory=str(inbound), settle_seconds=0)
    with pytest.raises(RuntimeError):
        adapter.poll_updates(Recorder(fail=True))
    assert visible(inbound) == ["inv.json"]
    update_file(inbound, "inv-again.json", "5001-01")
    (inbound / "processed").mkdir()
    os.chown(inbound / "processed", ssh_server.uid, ssh_server.gid)
    update_file(inbound / "processed", "inv.json", "older")  # a name the ERP used before
    receive = Recorder()
    assert adapter.poll_updates(receive) == 2
    adapter.close()
    processed = visible(inbound / "processed")
    assert len(processed) == 3 and "inv.json" in processed and "inv-again.json" in processed
    assert json.loads((inbound / "processed" / "inv.json").read_text())["orderId"] == "older"  # not overwritten
