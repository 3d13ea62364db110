"""Check a request the hub sent against VTEX's published spec (a trimmed extract kept in tests/fixtures)."""
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from openapi_schema_validator import OAS30Validator

SPEC = json.loads((Path(__file__).parent / "fixtures" / "vtex-orders-api.extract.json").read_text())


def _deref(node):
    if isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _deref(target)
    return node


def find_operation(method, path):
    for template, ops in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of VTEX's Orders API spec")


def assert_request_matches_spec(request):
    """Method and path exist; required query and header parameters are sent; the body validates."""
    url = urlsplit(request.url)
    template, op = find_operation(request.method, url.path)
    query = parse_qs(url.query)
    headers = {k.lower(): v for k, v in request.headers.items()}
    for param in [_deref(p) for p in op.get("parameters", [])]:
        if not param.get("required"):
            continue
        name = param["name"]
        if param["in"] == "query":
            assert name in query, f"{template}: required query parameter {name} missing"
        elif param["in"] == "header":
            assert name.lower() in headers, f"{template}: required header {name} missing"
            expected = _deref(param.get("schema", {})).get("default")
            if expected:
                assert headers[name.lower()] == expected, f"{template}: header {name} is {headers[name.lower()]!r}, spec says {expected!r}"
    assert "x-vtex-api-appkey" in headers and "x-vtex-api-apptoken" in headers, "auth headers missing"
    body_spec = op.get("requestBody")
    if body_spec and request.body:
        schema = _deref(body_spec["content"]["application/json"]["schema"])
        # OpenAPI 3.0, not plain JSON Schema: OAS30Validator understands `nullable`.
        OAS30Validator({**schema, "components": SPEC["components"]}).validate(json.loads(request.body))
    return template
