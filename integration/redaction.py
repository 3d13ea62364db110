"""Keep secrets out of logs, attempt excerpts and error messages.

Every secret the hub decrypts is remembered here (in memory, per process), and `redact()`
replaces it wherever it shows up, together with header values that are secret by name.
"""
import logging
import re
import threading

from integration.bounds import storable_text

REDACTED = "[redacted]"
_lock = threading.Lock()
_known_secrets: set[str] = set()
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

SECRET_NAME_PATTERN = r"(?:authorization|x-vtex-api-apptoken|apptoken|app_token|token|password|secret|signature|api[-_]?key|x-hub-signature[-\w]*)"
_HEADER_LINE = re.compile(rf"(?im)^(\s*{SECRET_NAME_PATTERN}\s*:\s*)(.+)$")
_JSON_PAIR = re.compile(rf"(?i)(\"[\w-]*{SECRET_NAME_PATTERN}[\w-]*\"\s*:\s*)\"((?:[^\"\\]|\\.)*)\"")
_PY_PAIR = re.compile(rf"(?i)('[\w-]*{SECRET_NAME_PATTERN}[\w-]*'\s*:\s*)'((?:[^'\\]|\\.)*)'")
# The secret segment of a VTEX push URL (/hooks/vtex/<store id>/<secret>/): redacted by its place
# in the URL, so a guessed or mistyped secret, or one this process never decrypted, is hidden too.
HOOK_URL_SECRET = re.compile(r"(/hooks/vtex/[^/?#\s\"'<>]+/)([^/?#\s\"'<>]+)")


def register_secret(value):
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _known_secrets.add(value)


def is_secret_name(name):
    return re.fullmatch(rf"(?i)[\w-]*{SECRET_NAME_PATTERN}[\w-]*", name or "") is not None


def redact(text):
    if text is None:
        return text
    text = str(text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _HEADER_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _JSON_PAIR.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)
    text = _PY_PAIR.sub(lambda m: m.group(1) + f"'{REDACTED}'", text)
    text = HOOK_URL_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_headers(headers):
    return {k: (REDACTED if is_secret_name(k) else redact(v)) for k, v in dict(headers or {}).items()}


# Text past an excerpt's limit is cut before it is redacted, keeping this much more: a secret
# that starts inside the excerpt ends inside what is redacted (known secrets: always, since the
# margin is at least the longest; a "key": "value" pair: when its value is shorter than this).
_EXCERPT_MARGIN = 1024


def excerpt(text, limit=2000):
    """A bounded, redacted excerpt for the operator. Only what is kept is redacted: a long text
    is cut first (with a margin, so that no secret is cut in two inside the excerpt)."""
    if text is None or text == "" or text == b"":
        return ""  # most excerpts of a delivery that succeeded: no redaction pass for nothing
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    else:
        text = str(text)
    total = len(text)
    if total > limit:
        with _lock:
            longest = max(map(len, _known_secrets), default=0)
        text = text[:limit + max(_EXCERPT_MARGIN, longest)]
    text = storable_text(redact(text))  # excerpts are stored: no NUL, no lone surrogates
    if total <= limit and len(text) <= limit:
        return text
    # The count of characters left out refers to the original text (redaction changes lengths).
    return text[:limit] + f"... [{max(total - limit, len(text) - limit)} more characters]"


def _redacted_request(request):
    """A copy of an HttpRequest whose path, META and headers carry no hook secret: Django's
    request warnings (405, 413, 4xx) attach the request to the record, and handlers (the admin
    e-mail report among them) print its full URL."""
    import copy

    clone = copy.copy(request)
    for name in ("path", "path_info"):
        value = getattr(request, name, None)
        if isinstance(value, str):
            setattr(clone, name, redact(value))
    meta = getattr(request, "META", None)
    if isinstance(meta, dict):
        clone.META = {k: (REDACTED if k == "HTTP_KEY" else redact(v) if isinstance(v, str) else v) for k, v in meta.items()}
    clone.__dict__.pop("headers", None)  # a cached_property: recomputed from the redacted META
    return clone


class RedactingFilter(logging.Filter):
    def filter(self, record):
        request = getattr(record, "request", None)
        if request is not None and isinstance(getattr(request, "path", None), str) and (
                HOOK_URL_SECRET.search(request.path) or "HTTP_KEY" in getattr(request, "META", {})):
            try:
                record.request = _redacted_request(request)
            except Exception:  # never lose the log line; drop the request rather than leak it
                record.request = None
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the log line
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
