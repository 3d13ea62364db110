"""Whatever an ERP sends, the API answers a 2xx or 4xx (503 only for VTEX being down): never a 500."""
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fake_vtex_updates import invoice_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(["type", "issuanceDate", "invoiceNumber", "invoiceValue", "items", "invoiceKey", "courier", "x\x00"])
paths = st.sampled_from(["/invoice", "/invoice/NF-1", "/invoice/NF-1/tracking", "/cancel"])
methods = {"/invoice": "post", "/invoice/NF-1": "patch", "/invoice/NF-1/tracking": "put", "/cancel": "post"}


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=paths, field=fields, value=json_values, raw=st.one_of(st.none(), st.binary(max_size=60)),
       order_id=st.text(min_size=1, max_size=80))
def test_never_a_500(client, token, handled_order, path, field, value, raw, order_id):
    body = invoice_body()
    body[field] = value
    data = raw if raw is not None else json.dumps(body)
    for oid in ("1001-01", order_id):
        oid = "".join(c for c in oid if c not in "/?#%") or "x"
        url = "/erp-api/teststore/api/oms/pvt/orders/" + oid + path
        try:
            response = getattr(client, methods[path])(url, data=data, content_type="application/json",
                                                      HTTP_AUTHORIZATION=f"Bearer {token}")
        except Exception as exc:  # the test client re-raises what the view raised
            pytest.fail(f"{type(exc).__name__}: {exc}")
        assert response.status_code < 500 or response.status_code == 503, response.content[:300]
        assert response["Content-Type"].startswith("application/json")
