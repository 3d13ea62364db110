"""Small helpers shared by the sandbox modules: VTEX-style timestamps, ids and handles."""
import base64
import json
import re
from datetime import datetime, timezone

_TICKS = 10_000_000  # .NET ticks (100 ns) per second: VTEX prints 7 fractional digits


def _split(ts):
    ticks = int(round(ts * _TICKS))
    secs, frac = divmod(ticks, _TICKS)
    return datetime.fromtimestamp(secs, timezone.utc), frac


def iso_z(ts):
    """Feed/hook timestamp: ``2019-08-12T20:54:23.7153839Z``."""
    dt, frac = _split(ts)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:07d}Z"


def iso_offset(ts):
    """Order timestamp: ``2024-02-04T20:09:43.8999580+00:00``."""
    dt, frac = _split(ts)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:07d}+00:00"


_FRACTION = re.compile(r"(\.\d+)")


def parse_iso(text):
    """Parse an ISO-8601 timestamp (``Z`` or offset, any number of fractional digits) to epoch seconds."""
    text = text.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    frac = 0.0
    match = _FRACTION.search(text)
    if match:
        frac = float("0" + match.group(1))
        text = text[: match.start()] + text[match.end():]
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp() + frac


def hex_id(rng, nbytes=16):
    return "%0*X" % (nbytes * 2, rng.getrandbits(nbytes * 8))


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_JWT_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "feed-v3"}, separators=(",", ":")).encode())


def make_handle(rng, app_key, message_id, receive_count, now):
    """An opaque, JWT-looking receipt handle (always longer than 300 characters), new on every receive."""
    payload = {
        "account": app_key,
        "messageId": message_id,
        "receiveCount": receive_count,
        "receipt": hex_id(rng, 24),
        "queue": "https://sqs.us-east-1.amazonaws.com/000000000000/sandbox-orders-feed-v3",
        "iat": int(now),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = _b64(rng.getrandbits(512).to_bytes(64, "big"))
    handle = f"{_JWT_HEADER}.{body}.{signature}"
    assert len(handle) > 300
    return handle
