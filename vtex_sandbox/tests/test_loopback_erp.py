"""LoopbackERP: recording, ids, idempotency duplicates, failure injection and the control paths."""
import time

EXPECTED_KEYS = {"path", "method", "headers", "body", "received_at", "time", "idempotency_key", "duplicate",
                 "status", "id"}


def test_records_and_answers_with_incrementing_ids(erp, http):
    first = http.post(erp.url + "/api/orders", json={"orderId": "1-01"}, headers={"X-Token": "abc"})
    assert first.status_code == 200 and first.json() == {"id": "ERP-1"}
    second = http.put(erp.url + "/other", data="plain text")
    assert second.json() == {"id": "ERP-2"}
    assert len(erp.received) == 2
    record = erp.received[0]
    assert set(record) == EXPECTED_KEYS
    assert record["path"] == "/api/orders" and record["body"] == {"orderId": "1-01"}
    assert record["headers"]["x-token"] == "abc" and record["headers"]["X-Token"] == "abc"
    assert abs(record["received_at"] - time.time()) < 5
    assert erp.received[1]["body"] == "plain text" and erp.received[1]["method"] == "PUT"
    assert http.get(erp.url + "/api/orders").status_code == 405


def test_idempotency_key_duplicates(erp, http):
    ids = [http.post(erp.url + "/orders", json={"n": n}, headers={"Idempotency-Key": key}).json()["id"]
           for n, key in enumerate(["A", "B", "A", "A"])]
    assert ids == ["ERP-1", "ERP-2", "ERP-1", "ERP-1"]
    http.post(erp.url + "/orders", json={})          # no key: always new
    assert sorted(erp.unique_keys()) == ["A", "B"]
    assert [d["body"]["n"] for d in erp.duplicates()] == [2, 3]
    assert len(erp.received) == 5


def test_fail_with_until_recover(erp, http):
    erp.fail_with(500)
    assert [http.post(erp.url + "/o", json={}).status_code for _ in range(3)] == [500, 500, 500]
    erp.recover()
    assert http.post(erp.url + "/o", json={}).json() == {"id": "ERP-1"}
    assert len(erp.rejected) == 3 and len(erp.received) == 1 and len(erp.attempts) == 4


def test_fail_with_count_and_retry_after(erp, http):
    erp.fail_with(429, count=2, retry_after=3)
    first = http.post(erp.url + "/o", json={}, headers={"Idempotency-Key": "K"})
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert http.post(erp.url + "/o", json={}, headers={"Idempotency-Key": "K"}).status_code == 429
    ok = http.post(erp.url + "/o", json={}, headers={"Idempotency-Key": "K"})
    assert ok.status_code == 200
    assert erp.duplicates() == []                    # rejected attempts are not duplicates


def test_fail_with_for_seconds(erp, http):
    erp.fail_with(503, for_seconds=0.3)
    assert http.post(erp.url + "/o", json={}).status_code == 503
    time.sleep(0.35)
    assert http.post(erp.url + "/o", json={}).status_code == 200


def test_latency(http):
    from vtex_sandbox import LoopbackERP
    with LoopbackERP(latency_ms=200) as slow:
        started = time.monotonic()
        http.post(slow.url + "/o", json={})
        assert time.monotonic() - started >= 0.2


def test_control_paths(erp, http):
    http.post(erp.url + "/orders", json={"a": 1})
    assert http.post(erp.url + "/_erp/fail", json={"status": 502, "for_seconds": 30}).status_code == 200
    assert http.post(erp.url + "/orders", json={"a": 2}).status_code == 502
    listed = http.get(erp.url + "/_erp/received").json()
    assert [r["body"] for r in listed] == [{"a": 1}]
    assert len(http.get(erp.url + "/_erp/received", params={"all": 1}).json()) == 2
    assert http.post(erp.url + "/_erp/recover").status_code == 200
    assert http.post(erp.url + "/orders", json={"a": 3}).status_code == 200
    http.post(erp.url + "/_erp/reset")
    assert erp.received == [] and http.get(erp.url + "/_erp/received").json() == []
