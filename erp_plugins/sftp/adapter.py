"""Upload one file per order to an SFTP server, and pick up invoice / tracking files back.

Out: each order and action becomes one file (JSON by default, CSV as an option) in the remote
folder. It is written under a temporary name (a leading dot, ending in `.tmp`) and renamed to its
final name once complete, so the receiving side never sees half a file. The name depends only on
the store, the order and the action: a retry replaces the same file instead of adding another.

Security: the server's host key must match the SHA256 fingerprint in the settings before anything
else happens (no password or key signature ever reaches a server that is not the pinned one);
authentication is by password or private key, both secret settings.

Back (capability `updates`): `poll_updates` lists the inbound folder, waits `settle_seconds`,
lists it again, and takes only the files whose size and time did not change in between and whose
name is not a temporary one; each file is parsed (the hub's inbound body format), stored through
`receive`, then moved to `processed/`; a malformed or refused file goes to `rejected/` next to a
`<name>.reason.txt` saying why. A file the hub could not store stays where it is for the next poll.
"""
import base64
import csv
import errno
import hashlib
import io
import json
import logging
import posixpath
import re
import secrets
import socket
import stat
import time
from datetime import datetime, timezone

from integration.plugins import (
    CANCEL,
    SEND,
    STATUS,
    UPDATES,
    Adapter,
    AdapterError,
    ConnectionPool,
    Delivery,
    PermanentError,
    Setting,
    TransientError,
    excerpt,
    parse_update_message,
    register_secret,
    file_name_problem,
    safe_part,
)


class _Paramiko:
    """paramiko, imported on first use (an SFTP binding connecting, or reading a key): a hub without
    SFTP bindings never loads it. `import` inside is thread-safe and, once done, a dictionary lookup."""

    def __getattr__(self, name):
        import paramiko as module

        return getattr(module, name)


paramiko = _Paramiko()

log = logging.getLogger(__name__)

EVENTS = {SEND: "order.send", CANCEL: "order.cancel", STATUS: "order.status"}
DEFAULT_TEMPLATE = "{account}-{order_id}-{action}.{ext}"
PLACEHOLDERS = frozenset({"account", "order_id", "action", "sequence", "ext"})
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload")
PROCESSED, REJECTED = "processed", "rejected"
MAX_INBOUND_BYTES = 1024 * 1024
EXCERPT_LIMIT = 2000
_FINGERPRINT = re.compile(r"(?:SHA256:)?([A-Za-z0-9+/]{43})=?")
_PEM = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END [A-Z0-9 ]+-----)", re.DOTALL)

POOL_MAX_IDLE = 30  # seconds an idle SSH session is kept for the next delivery


def _pooled_usable(item):
    transport, sftp = item
    if not transport.is_active():
        return False
    sftp.normalize(".")  # one round trip: a session the server dropped fails here, not mid-upload
    return True


def _close_pair(item):
    for thing in reversed(item):
        try:
            thing.close()
        except Exception:  # already broken
            pass


POOL = ConnectionPool(close=_close_pair, is_usable=_pooled_usable)

# One line per order item. The order's fields repeat on each of its lines.
CSV_COLUMNS = (
    "event", "idempotency_key", "account", "order_id", "sequence", "creation_date", "status", "currency",
    "customer_email", "customer_first_name", "customer_last_name", "customer_document", "customer_phone",
    "receiver_name", "street", "number", "complement", "neighborhood", "city", "state", "postal_code", "country",
    "item_index", "sku", "ref_id", "item_name", "quantity", "unit_price", "selling_price", "item_total",
    "shipping_total", "discounts_total", "order_value",
)


def fingerprint(key) -> str:
    """OpenSSH's SHA256 fingerprint of a public key, as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def normalise_fingerprint(value):
    match = _FINGERPRINT.fullmatch((value or "").strip())
    return f"SHA256:{match.group(1)}" if match else None


def template_problem(template):
    return file_name_problem(template, PLACEHOLDERS, TEMP_SUFFIXES)


def load_private_key(text, passphrase=None):
    """A paramiko key from OpenSSH or PEM text. A key pasted into a one-line field loses its line
    breaks; they are put back (only where the body is plain base64)."""
    text = (text or "").strip()
    match = _PEM.search(text)
    if match and ":" not in match.group(2):
        body = "".join(match.group(2).split())
        text = match.group(1) + "\n" + "\n".join(body[i:i + 70] for i in range(0, len(body), 70)) + "\n" + match.group(3) + "\n"
    problems = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise ValueError("The private key is encrypted: enter its passphrase.") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError) as exc:
            problems.append(str(exc))
    if any("passphrase" in p.lower() or "decrypt" in p.lower() for p in problems):
        raise ValueError("The private key could not be decrypted: check the passphrase.")
    raise ValueError("Not a private key paramiko can read (OpenSSH or PEM; Ed25519, ECDSA or RSA).")


class SftpAdapter(Adapter):
    key = "sftp"
    label = "SFTP file exchange"
    actions = frozenset({SEND, CANCEL, STATUS})
    capabilities = frozenset({UPDATES})
    settings = (
        Setting("host", "Host", required=True, help="The SFTP server's host name or IP address."),
        Setting("port", "Port", type="int", default=22),
        Setting("username", "User name", required=True),
        Setting("host_key_fingerprint", "Host key fingerprint", required=True,
                help="The server key's SHA256 fingerprint, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 "
                     "(ask the server's admin, or run: ssh-keyscan -p PORT HOST | ssh-keygen -lf -). "
                     "Any other key is refused."),
        Setting("password", "Password", secret=True, help="Password authentication. Leave empty to use a private key."),
        Setting("private_key", "Private key", secret=True,
                help="Key authentication: the private key (OpenSSH or PEM text; Ed25519, ECDSA or RSA)."),
        Setting("private_key_passphrase", "Private key passphrase", secret=True,
                help="Only when the private key is encrypted."),
        Setting("remote_directory", "Remote folder", required=True,
                help="Where order files are written, e.g. /outbound or outbound (relative to the login folder). "
                     "It must exist."),
        Setting("filename_template", "File name template", default=DEFAULT_TEMPLATE,
                help="Placeholders: {account}, {order_id}, {action}, {sequence}, {ext} (json or csv). "
                     "Must contain {order_id} and {action}."),
        Setting("file_format", "File format", type="choice", default="json",
                choices=(("json", "JSON (the whole order)"), ("csv", "CSV (one line per item)"))),
        Setting("inbound_directory", "Inbound folder",
                help="Where the ERP leaves invoice, tracking and cancellation files (the hub's inbound body "
                     "format). Files are moved to its processed/ or rejected/ subfolder. Empty: nothing comes back."),
        Setting("settle_seconds", "Settle time (seconds)", type="int", default=2,
                help="An inbound file is taken only if its size and time did not change over this long "
                     "(0 to 60); a file still being written waits for the next poll."),
        Setting("max_inbound_per_poll", "Inbound files per poll", type="int", default=100,
                help="At most this many inbound files are taken per poll (1 to 10000)."),
        Setting("timeout", "Timeout (seconds)", type="int", default=30,
                help="Connect and read timeout, 1 to 300 seconds."),
    )

    @classmethod
    def check_settings(cls, cleaned):
        errors = {}
        if "host_key_fingerprint" in cleaned and not normalise_fingerprint(cleaned["host_key_fingerprint"]):
            errors["host_key_fingerprint"] = "Enter the SHA256 fingerprint, like SHA256: and 43 base64 characters."
        host = cleaned.get("host") or ""
        if host and (len(host) > 255 or any(c.isspace() or ord(c) < 32 or c in "/@" for c in host)):
            errors["host"] = "Enter a host name or IP address only."
        if cleaned.get("port") is not None and not 1 <= cleaned["port"] <= 65535:
            errors["port"] = "Enter a port from 1 to 65535."
        if "password" in cleaned and "private_key" in cleaned and not cleaned.get("password") and not cleaned.get("private_key"):
            errors["password"] = "Enter a password or a private key."
        if cleaned.get("private_key"):
            try:
                load_private_key(cleaned["private_key"], cleaned.get("private_key_passphrase"))
            except ValueError as exc:
                errors["private_key"] = str(exc)
        problem = template_problem(cleaned.get("filename_template", DEFAULT_TEMPLATE))
        if problem:
            errors["filename_template"] = problem
        for name in ("remote_directory", "inbound_directory"):
            value = cleaned.get(name) or ""
            if len(value) > 1000 or any(ord(c) < 32 for c in value):
                errors[name] = "Enter a folder path without control characters."
        for name, low, high in (("settle_seconds", 0, 60), ("max_inbound_per_poll", 1, 10000), ("timeout", 1, 300)):
            value = cleaned.get(name)
            if value is not None and not low <= value <= high:
                errors[name] = f"Enter a number from {low} to {high}."
        return errors

    def __init__(self, config):
        super().__init__(config)
        self.host = config["host"]
        self.port = config.get("port") or 22
        self.username = config["username"]
        self.expected_fingerprint = normalise_fingerprint(config["host_key_fingerprint"])
        self.password = config.get("password") or ""
        self.private_key_text = config.get("private_key") or ""
        self.passphrase = config.get("private_key_passphrase") or ""
        for secret in (self.password, self.private_key_text, self.passphrase):
            register_secret(secret)
        self.remote_directory = config["remote_directory"].rstrip("/") or "/"
        self.template = config.get("filename_template") or DEFAULT_TEMPLATE
        self.file_format = config.get("file_format") or "json"
        self.inbound_directory = (config.get("inbound_directory") or "").rstrip("/")
        self.settle_seconds = config.get("settle_seconds")
        if self.settle_seconds is None:
            self.settle_seconds = 2
        self.max_inbound = config.get("max_inbound_per_poll") or 100
        self.timeout = config.get("timeout") or 30
        self.account = config.get("_account") or ""
        self._pool_key = (self.host, self.port, self.username, self.expected_fingerprint, self.password,
                          self.private_key_text, self.passphrase, self.timeout)
        self._transport = None
        self._sftp = None

    # --- connection -----------------------------------------------------------------------------
    def where(self):
        return f"sftp://{self.username}@{self.host}:{self.port}"

    def _client(self):
        """An SFTP session (one per adapter: a dispatch batch's deliveries through it share it)."""
        if self._sftp is not None and self._transport is not None and self._transport.is_active():
            return self._sftp
        self._drop()
        taken = POOL.take(self._pool_key, max_idle=POOL_MAX_IDLE)
        if taken is not None:
            self._transport, self._sftp = taken
            return self._sftp
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.gaierror as exc:
            raise TransientError(f"the SFTP host name {self.host!r} does not resolve (DNS: {exc.strerror or exc})") from None
        except ConnectionRefusedError:
            raise TransientError(f"{self.where()} refused the connection: is the SSH server running and the port right?") from None
        except (socket.timeout, TimeoutError):
            raise TransientError(f"{self.where()} did not answer within {self.timeout} s") from None
        except OSError as exc:
            raise TransientError(f"could not connect to {self.where()}: {exc.strerror or exc}") from None
        transport = paramiko.Transport(sock)
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = self.timeout
        try:
            transport.start_client(timeout=self.timeout)
            key = transport.get_remote_server_key()
            found = fingerprint(key)
            if found != self.expected_fingerprint:
                # Checked before authenticating: no credential reaches a server that is not the pinned one.
                raise PermanentError(
                    f"{self.where()} presented the host key {key.get_name()} {found}, not the pinned "
                    f"{self.expected_fingerprint}: refused. If the server's key really changed, put the new "
                    "fingerprint in the settings; otherwise this is another server.")
            self._authenticate(transport)
            sftp = paramiko.SFTPClient.from_transport(transport)
            sftp.get_channel().settimeout(self.timeout)
        except AdapterError:
            transport.close()
            raise
        except paramiko.AuthenticationException:
            transport.close()
            raise PermanentError(f"{self.where()} refused the login of user {self.username!r}: check the "
                                 f"{'password' if self.password and not self.private_key_text else 'private key'}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise TransientError(f"SSH session with {self.where()} failed: {self._describe(exc)}") from None
        self._transport, self._sftp = transport, sftp
        return sftp

    def _authenticate(self, transport):
        if self.private_key_text:
            try:
                key = load_private_key(self.private_key_text, self.passphrase)
            except ValueError as exc:
                raise PermanentError(f"private key: {exc}") from None
            transport.auth_publickey(self.username, key)
        else:
            transport.auth_password(self.username, self.password)  # falls back to keyboard-interactive

    def close(self):
        """Hand the session to the pool: the next delivery with the same settings reuses it."""
        if self._transport is not None and self._sftp is not None:
            POOL.give(self._pool_key, (self._transport, self._sftp))
        self._sftp = self._transport = None

    def _drop(self):
        """Close the session for good (after an error, or for a connection check)."""
        if self._transport is not None:
            _close_pair((self._transport, self._sftp) if self._sftp is not None else (self._transport,))
        self._sftp = self._transport = None

    def _describe(self, exc):
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        for secret in (self.password, self.passphrase):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _file_error(self, exc, what, path):
        """Plain words for an error on a remote file or folder; the session is dropped when broken."""
        code = getattr(exc, "errno", None)
        folder = posixpath.dirname(path) or path
        if isinstance(exc, PermissionError) or code == errno.EACCES:
            return PermanentError(f"{what}: user {self.username!r} has no permission to write in {folder!r} on {self.where()}")
        if isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
            return PermanentError(f"{what}: the folder {folder!r} does not exist on {self.where()}")
        self._drop()
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return TransientError(f"{what}: {self.where()} did not answer within {self.timeout} s")
        if isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError)):
            return TransientError(f"{what}: the SSH session with {self.where()} was lost: {self._describe(exc)}")
        # SSH_FX_FAILURE ("Failure") is what a full disk or quota looks like over SFTP.
        return TransientError(f"{what}: {self.where()} could not write {path!r} (disk full or quota?): {self._describe(exc)}")

    # --- out ------------------------------------------------------------------------------------
    def send_order(self, order, raw, idempotency_key):
        return self._upload(SEND, order, raw, idempotency_key)

    def cancel_order(self, order, raw, idempotency_key):
        return self._upload(CANCEL, order, raw, idempotency_key)

    def status_changed(self, order, raw, state, idempotency_key):
        return self._upload(STATUS, order, raw, idempotency_key, state=state)

    def filename(self, order, action):
        if not self.account and "{account}" in self.template:
            raise PermanentError(f"order {order.order_id}: no store account name for the file name template")
        return self.template.format(
            account=safe_part(self.account), order_id=safe_part(order.order_id), action=safe_part(action),
            sequence=safe_part(order.sequence), ext=self.file_format,
        )

    def render(self, action, order, raw, idempotency_key, state=None) -> bytes:
        if self.file_format == "csv":
            return render_csv(EVENTS[action], idempotency_key, self.account, order)
        document = {"event": EVENTS[action], "idempotency_key": idempotency_key, "account": self.account,
                    "written_at": datetime.now(timezone.utc).isoformat()}
        if state is not None:
            document["state"] = state
        document["order"] = order.to_dict()
        document["vtex_order"] = raw
        return json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")

    def _upload(self, action, order, raw, idempotency_key, state=None):
        name = self.filename(order, action)
        data = self.render(action, order, raw, idempotency_key, state)
        path = posixpath.join(self.remote_directory, name)
        request_excerpt = excerpt(f"upload {self.where()}{'' if path.startswith('/') else '/'}{path} "
                                  f"({len(data)} bytes)\n\n" + data.decode("utf-8", "replace"), EXCERPT_LIMIT)
        try:
            sftp = self._client()
            self.write_atomically(sftp, path, data)
        except AdapterError as exc:
            exc.request_excerpt = request_excerpt
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            error = self._file_error(exc, f"uploading {name}", path)
            error.request_excerpt = request_excerpt
            raise error from None
        return Delivery(reference=name, request_excerpt=request_excerpt,
                        response_excerpt=f"{path}: {len(data)} bytes, renamed into place",
                        detail=f"uploaded {path} to {self.where()} ({len(data)} bytes)")

    @staticmethod
    def write_atomically(sftp, path, data):
        """Write under a temporary name in the same folder, check the size, rename over `path`."""
        folder, name = posixpath.split(path)
        temp = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            with sftp.open(temp, "wb") as fh:
                fh.set_pipelined(True)
                fh.write(data)
            size = sftp.stat(temp).st_size
            if size != len(data):
                raise OSError(errno.EIO, f"the server stored {size} of {len(data)} bytes")
            try:
                sftp.posix_rename(temp, path)  # atomic, and replaces the file of an earlier attempt
            except OSError as exc:
                if "posix-rename" not in str(exc) and "Operation unsupported" not in str(exc):
                    raise
                _remove_quietly(sftp, path)  # a server without the extension: rename cannot replace
                sftp.rename(temp, path)
        except BaseException:
            _remove_quietly(sftp, temp)
            raise

    # --- check ----------------------------------------------------------------------------------
    def check_connection(self):
        self._drop()
        try:
            sftp = self._client()
            parts = [f"Logged in to {self.where()} (host key {self.expected_fingerprint} verified)."]
            probe = posixpath.join(self.remote_directory, f".hub-probe-{secrets.token_hex(4)}.tmp")
            try:
                sftp.stat(self.remote_directory)
                with sftp.open(probe, "wb") as fh:
                    fh.write(b"probe")
                sftp.remove(probe)
            except (OSError, paramiko.SSHException) as exc:
                raise self._file_error(exc, "checking the remote folder", probe) from None
            parts.append(f"Remote folder {self.remote_directory!r} is writable.")
            if self.inbound_directory:
                try:
                    entries = sftp.listdir_attr(self.inbound_directory)
                except (OSError, paramiko.SSHException) as exc:
                    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
                        raise PermanentError(f"the inbound folder {self.inbound_directory!r} does not exist on {self.where()}") from None
                    if isinstance(exc, PermissionError):
                        raise PermanentError(f"user {self.username!r} may not read the inbound folder {self.inbound_directory!r}") from None
                    raise self._file_error(exc, "reading the inbound folder", self.inbound_directory) from None
                waiting = sum(1 for e in entries if _is_candidate(e))
                parts.append(f"Inbound folder {self.inbound_directory!r} has {waiting} file(s) waiting.")
        finally:
            self._drop()
        return " ".join(parts)

    # --- back -----------------------------------------------------------------------------------
    def poll_updates(self, receive):
        if not self.inbound_directory:
            return 0
        folder = self.inbound_directory
        try:
            sftp = self._client()
            first = {e.filename: (e.st_size, e.st_mtime) for e in sftp.listdir_attr(folder) if _is_candidate(e)}
            if not first:
                return 0
            if self.settle_seconds:
                time.sleep(self.settle_seconds)  # a file still being written grows meanwhile
            second = {e.filename: (e.st_size, e.st_mtime) for e in sftp.listdir_attr(folder) if _is_candidate(e)}
        except AdapterError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._file_error(exc, "listing the inbound folder", folder) from None
        stable = sorted(name for name, seen in first.items() if second.get(name) == seen)
        if len(stable) < len(first):
            log.info("sftp inbound %s: %d file(s) still changing, left for the next poll", folder, len(first) - len(stable))
        handled = 0
        for name in stable[: self.max_inbound]:
            self._take(sftp, folder, name, first[name][0], receive)
            handled += 1
        return handled

    def _take(self, sftp, folder, name, size, receive):
        path = posixpath.join(folder, name)
        source = f"sftp file {path}"
        try:
            if size > MAX_INBOUND_BYTES:
                return self._reject(sftp, folder, name, f"{source}: {size} bytes, more than the {MAX_INBOUND_BYTES} an update may have")
            with sftp.open(path, "rb") as fh:
                data = fh.read(MAX_INBOUND_BYTES + 1)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._file_error(exc, f"reading {name}", path) from None
        try:
            update = parse_update_message(data, source=source)
        except PermanentError as exc:
            return self._reject(sftp, folder, name, str(exc))
        receipt = receive(update)  # raises when the hub cannot store it: the file stays for the next poll
        if receipt.accepted:
            self._move(sftp, folder, name, PROCESSED)
        else:
            self._reject(sftp, folder, name, f"{source}: refused by the hub: {receipt.error or receipt.status}")

    def _reject(self, sftp, folder, name, reason):
        log.error("sftp inbound: rejected %s", reason)
        try:
            target = self._move(sftp, folder, name, REJECTED)
            reason_path = target + ".reason.txt"
            self.write_atomically(sftp, reason_path, (excerpt(reason, 2000) + "\n").encode("utf-8"))
        except AdapterError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._file_error(exc, f"moving {name} to {REJECTED}/", folder) from None

    def _move(self, sftp, folder, name, subfolder):
        """Move folder/name into folder/subfolder/, never over an earlier file of the same name."""
        target_dir = posixpath.join(folder, subfolder)
        try:
            try:
                sftp.mkdir(target_dir)
            except OSError:
                sftp.stat(target_dir)  # it exists already (or this raises the real problem)
            target = posixpath.join(target_dir, name)
            try:
                sftp.stat(target)
            except FileNotFoundError:
                pass
            else:
                target += "." + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            sftp.posix_rename(posixpath.join(folder, name), target)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._file_error(exc, f"moving {name} to {subfolder}/", target_dir) from None
        return target


def _is_candidate(entry):
    name = entry.filename
    return (stat.S_ISREG(entry.st_mode or 0) and not name.startswith(".")
            and not name.lower().endswith(TEMP_SUFFIXES) and not name.endswith(".reason.txt"))


def _remove_quietly(sftp, path):
    try:
        sftp.remove(path)
    except (OSError, paramiko.SSHException, EOFError):
        pass


def render_csv(event, idempotency_key, account, order) -> bytes:
    """CSV_COLUMNS, a header line then one line per item; money as "12.90", dates ISO 8601."""
    data = order.to_dict()
    customer = data.get("customer") or {}
    address = data.get("shipping_address") or {}
    totals = data.get("totals") or {}
    common = {
        "event": event, "idempotency_key": idempotency_key, "account": account, "order_id": data["order_id"],
        "sequence": data["sequence"], "creation_date": data["creation_date"] or "", "status": data["status"],
        "currency": data["currency"], "customer_email": customer.get("email", ""),
        "customer_first_name": customer.get("first_name", ""), "customer_last_name": customer.get("last_name", ""),
        "customer_document": customer.get("document", ""), "customer_phone": customer.get("phone", ""),
        "receiver_name": address.get("receiver_name", ""), "street": address.get("street", ""),
        "number": address.get("number", ""), "complement": address.get("complement", ""),
        "neighborhood": address.get("neighborhood", ""), "city": address.get("city", ""),
        "state": address.get("state", ""), "postal_code": address.get("postal_code", ""),
        "country": address.get("country", ""), "shipping_total": totals.get("shipping", ""),
        "discounts_total": totals.get("discounts", ""), "order_value": data["value"],
    }
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for index, item in enumerate(data["items"]):
        writer.writerow({**common, "item_index": index, "sku": item["sku"], "ref_id": item["ref_id"],
                         "item_name": item["name"], "quantity": item["quantity"], "unit_price": item["unit_price"],
                         "selling_price": item["selling_price"], "item_total": item["total"]})
    return out.getvalue().encode("utf-8")
