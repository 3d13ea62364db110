"""Write one JSON file per order and action into a directory (a share an ERP/WMS polls).

Files are written atomically: a temporary file in the same directory (name starting with a dot
and ending in `.tmp`), flushed and fsynced, then renamed over the final name with `os.replace`.
A reader therefore sees either no file or a complete one. The name depends only on the store,
the order and the action, so a retry rewrites the same file instead of adding a second one.

The way back: with an inbox (by default `inbox/` next to the drop directory), the ERP drops one
file per update for VTEX, whose content is VTEX's own JSON body and whose name says what it is:

    invoice--{orderId}.json                      POST .../orders/{orderId}/invoice
    tracking--{orderId}--{invoiceNumber}.json    PATCH .../invoice/{invoiceNumber}
    delivery--{orderId}--{invoiceNumber}.json    PUT .../invoice/{invoiceNumber}/tracking
    cancel--{orderId}.json                       POST .../orders/{orderId}/cancel
    cancel-refusal--{orderId}.json               no VTEX call: the refusal of a cancellation request,
                                                 recorded on the order for the operator

Each poll hands the files to the hub (`poll_updates`); an accepted file moves to `processed/`,
a refused one to `rejected/` with `<name>.reason.txt` beside it saying why. A file the hub cannot
decide on now (VTEX unreachable) stays for the next poll. Names starting with a dot or ending in
.tmp are skipped (write them under such a name, then rename), and so is a file younger than
`inbox_settle_seconds` (still being written).

The store's account name comes from the `_account` key the hub injects into the adapter config
(the VTEX account name of the binding's store); when absent, from the order's `hostname`.
"""
import json
import os
import tempfile
from datetime import datetime, timezone

from integration.plugins import (
    CANCEL, SEND, UPDATES, Adapter, Delivery, InboundUpdate, PermanentError, Setting, TransientError, excerpt,
    file_name_problem, safe_part,
)

DEFAULT_TEMPLATE = "{account}-{order_id}-{action}.json"
PLACEHOLDERS = frozenset({"account", "order_id", "action", "sequence"})


def template_problems(template):
    """Why a filename template is unusable, or None."""
    return file_name_problem(template, PLACEHOLDERS)


class FileDropAdapter(Adapter):
    key = "file_drop"
    label = "File drop (JSON file per order)"
    actions = frozenset({SEND, CANCEL})
    capabilities = frozenset({UPDATES})  # picks up ERP files from its inbox folder (poll_updates)
    settings = (
        Setting("directory", "Directory", type="path", required=True,
                help="Absolute path of the directory to write into; created if missing."),
        Setting("filename_template", "File name template", default=DEFAULT_TEMPLATE,
                help="Placeholders: {account}, {order_id}, {action}, {sequence}. "
                     "Must contain {order_id} and {action}."),
        Setting("inbox_enabled", "Read updates from an inbox", type="bool", default=False,
                help="Pick up invoice, tracking and cancel files the ERP drops (VTEX's JSON body, one file per update)."),
        Setting("inbox_directory", "Inbox directory", type="path",
                help="Where the ERP drops update files. Blank: 'inbox' next to the drop directory."),
        Setting("inbox_settle_seconds", "Inbox settle time", type="int", default=2,
                help="A file younger than this many seconds is left for the next poll (it may still be being written)."),
    )

    @classmethod
    def check_settings(cls, cleaned):
        problem = template_problems(cleaned.get("filename_template", DEFAULT_TEMPLATE))
        return {"filename_template": problem} if problem else {}

    def __init__(self, config):
        super().__init__(config)
        self.directory = config["directory"]
        self.template = config.get("filename_template") or DEFAULT_TEMPLATE
        self.inbox_enabled = bool(config.get("inbox_enabled"))
        self.inbox = config.get("inbox_directory") or default_inbox(self.directory)
        self.settle_seconds = int(config.get("inbox_settle_seconds") or 0)

    def send_order(self, order, raw, idempotency_key):
        return self._write(SEND, order, raw, idempotency_key)

    def cancel_order(self, order, raw, idempotency_key):
        return self._write(CANCEL, order, raw, idempotency_key)

    def poll_updates(self, receive):
        """The way back: hand each update file of the inbox to the hub (see the module doc)."""
        if not self.inbox_enabled:
            return 0
        return _poll_inbox(self, receive)

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


# --- the way back: the inbox -----------------------------------------------------------------------
INBOX_KINDS = ("invoice", "tracking", "delivery", "cancel", "cancel-refusal")
INBOX_MAX_FILES = 200          # per poll: the next poll takes the rest
INBOX_MAX_BYTES = 1024 * 1024  # VTEX's largest body (an embedded XML invoice) fits well within


def default_inbox(directory):
    return os.path.join(os.path.dirname(os.path.normpath(directory)), "inbox")


class InboxFileError(ValueError):
    pass


def parse_inbox_name(name):
    """(kind, order id, invoice number or None) from a file name, or InboxFileError saying why."""
    if not name.endswith(".json"):
        raise InboxFileError("the name must end in .json")
    parts = name[: -len(".json")].split("--", 2)
    kind = parts[0]
    if kind not in INBOX_KINDS:
        raise InboxFileError(f"the name must start with one of {', '.join(k + '--' for k in INBOX_KINDS)}")
    if len(parts) < 2 or not parts[1]:
        raise InboxFileError(f"no order id: name it {kind}--{{orderId}}" + ("--{invoiceNumber}" if kind in ("tracking", "delivery") else "") + ".json")
    number = parts[2] if len(parts) == 3 else None
    if kind in ("tracking", "delivery") and not number:
        raise InboxFileError(f"no invoice number: name it {kind}--{{orderId}}--{{invoiceNumber}}.json")
    return kind, parts[1], number


def _poll_inbox(adapter, receive):
    inbox = adapter.inbox
    try:
        names = sorted(n for n in os.listdir(inbox) if not n.startswith(".") and not n.endswith(".tmp"))
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise TransientError(f"cannot read the inbox {inbox}: {exc.strerror or exc}") from None
    handed = 0
    now = datetime.now(timezone.utc).timestamp()
    for name in names:
        path = os.path.join(inbox, name)
        try:
            stat = os.stat(path)
        except OSError:
            continue  # moved away meanwhile
        if not os.path.isfile(path) or now - stat.st_mtime < adapter.settle_seconds:
            continue
        if handed >= INBOX_MAX_FILES:
            break
        handed += 1
        try:
            kind, order_id, number = parse_inbox_name(name)
            if stat.st_size > INBOX_MAX_BYTES:
                raise InboxFileError(f"larger than {INBOX_MAX_BYTES} bytes")
            with open(path, "rb") as fh:
                try:
                    body = json.loads(fh.read().decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                    raise InboxFileError(f"not JSON: {type(exc).__name__}: {excerpt(str(exc), 200)}") from None
        except InboxFileError as exc:
            _move(inbox, name, "rejected", f"{name}: {exc}")
            continue
        try:
            receipt = receive(InboundUpdate(kind=kind, order_id=order_id, body=body, invoice_number=number, source=f"file {name}"))
        except TransientError:
            handed -= 1
            continue  # the hub cannot decide now (VTEX unreachable): the file stays for the next poll
        if receipt.accepted:
            _move(inbox, name, "processed", None)
        else:
            _move(inbox, name, "rejected", f"{name}: {receipt.error}")
    return handed


def _move(inbox, name, folder, reason):
    target_dir = os.path.join(inbox, folder)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, name)
    if os.path.exists(target):  # the same name again later: keep both
        stem = name[: -len(".json")] if name.endswith(".json") else name
        target = os.path.join(target_dir, f"{stem}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}.json")
    if reason is not None:
        write_atomically(target + ".reason.txt", (reason + "\n").encode("utf-8"))
    os.replace(os.path.join(inbox, name), target)


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
