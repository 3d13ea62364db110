"""Write one JSON file per order and action into a directory (a share an ERP/WMS polls).

Files are written atomically: a temporary file in the same directory (name starting with a dot
and ending in `.tmp`), flushed and fsynced, then renamed over the final name with `os.replace`.
A reader therefore sees either no file or a complete one. The name depends only on the store,
the order and the action, so a retry rewrites the same file instead of adding a second one.

The store's account name comes from the `_account` key the hub injects into the adapter config
(the VTEX account name of the binding's store); when absent, from the order's `hostname`.
"""
import json
import os
import re
import string
import tempfile
from datetime import datetime, timezone

from integration.plugins import CANCEL, SEND, Adapter, Delivery, PermanentError, Setting, TransientError, excerpt

DEFAULT_TEMPLATE = "{account}-{order_id}-{action}.json"
PLACEHOLDERS = frozenset({"account", "order_id", "action", "sequence"})
REQUIRED_PLACEHOLDERS = ("order_id", "action")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def template_problems(template):
    """Why a filename template is unusable, or None."""
    if not template:
        return "Enter a file name template."
    if "/" in template or "\\" in template or "\x00" in template:
        return "The template is a file name, not a path: no '/' or '\\'."
    if template.startswith("."):
        return "The file name may not start with a dot (temporary files do)."
    if template.endswith(".tmp"):
        return "The file name may not end with .tmp (temporary files do)."
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"Invalid template: {exc}."
    used = set()
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            return f"Unknown placeholder {{{field}}}; use " + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS)) + "."
        if spec or conversion:
            return f"Placeholder {{{field}}} takes no format options."
        used.add(field)
    missing = [p for p in REQUIRED_PLACEHOLDERS if p not in used]
    if missing:
        return "The template must contain " + " and ".join(f"{{{p}}}" for p in missing) + " so files never overwrite each other."
    return None


def safe_part(value):
    value = _UNSAFE.sub("_", str(value or ""))
    return "_" if value in ("", ".", "..") else value[:100]


class FileDropAdapter(Adapter):
    key = "file_drop"
    label = "File drop (JSON file per order)"
    actions = frozenset({SEND, CANCEL})
    settings = (
        Setting("directory", "Directory", type="path", required=True,
                help="Absolute path of the directory to write into; created if missing."),
        Setting("filename_template", "File name template", default=DEFAULT_TEMPLATE,
                help="Placeholders: {account}, {order_id}, {action}, {sequence}. "
                     "Must contain {order_id} and {action}."),
    )

    @classmethod
    def check_settings(cls, cleaned):
        problem = template_problems(cleaned.get("filename_template", DEFAULT_TEMPLATE))
        return {"filename_template": problem} if problem else {}

    def __init__(self, config):
        super().__init__(config)
        self.directory = config["directory"]
        self.template = config.get("filename_template") or DEFAULT_TEMPLATE

    def send_order(self, order, raw, idempotency_key):
        return self._write(SEND, order, raw, idempotency_key)

    def cancel_order(self, order, raw, idempotency_key):
        return self._write(CANCEL, order, raw, idempotency_key)

    def check_connection(self):
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".hub-probe-", suffix=".tmp", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise TransientError(f"cannot write into {self.directory}: {exc.strerror or exc}") from None
        return f"Directory {self.directory} is writable."

    def account_name(self, raw):
        account = self.config.get("_account") or (raw.get("hostname") if isinstance(raw, dict) else None)
        return account if isinstance(account, str) and account.strip() else ""

    def filename(self, order, raw, action):
        account = self.account_name(raw)
        if not account and "{account}" in self.template:
            raise PermanentError(
                f"order {order.order_id}: no store account name (neither _account in the config nor hostname in the order)"
            )
        name = self.template.format(
            account=safe_part(account), order_id=safe_part(order.order_id),
            action=safe_part(action), sequence=safe_part(order.sequence),
        )
        if os.path.basename(name) != name or name.startswith("."):
            raise PermanentError(f"file name {name!r} from the template is not a plain file name")
        return name

    def _write(self, action, order, raw, idempotency_key):
        name = self.filename(order, raw, action)
        document = {
            "event": f"order.{action}",
            "idempotency_key": idempotency_key,
            "account": self.account_name(raw),
            "written_at": datetime.now(timezone.utc).isoformat(),
            "order": order.to_dict(),
            "vtex_order": raw,
        }
        data = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        path = os.path.join(self.directory, name)
        try:
            os.makedirs(self.directory, exist_ok=True)
            write_atomically(path, data)
        except OSError as exc:
            raise TransientError(
                f"could not write {path}: {exc.strerror or exc}",
                request_excerpt=excerpt(data, 2000),
            ) from None
        return Delivery(
            reference="",
            request_excerpt=excerpt(data, 2000),
            response_excerpt="",
            detail=f"wrote {path} ({len(data)} bytes)",
        )


def write_atomically(path, data: bytes):
    """Write `data` to `path` so that readers see the old file, or the new one, never a part."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the ERP may read as another user
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
