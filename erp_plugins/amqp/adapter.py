"""Publish each order to an AMQP 0-9-1 exchange (RabbitMQ), and consume updates back from a queue.

Out: one persistent JSON message per order and action, published with publisher confirms and the
`mandatory` flag, so that a delivery counts only when the broker has routed the message to at
least one queue and confirmed it. The idempotency key is the `message_id`: a retry after a lost
confirm publishes the same message again under the same id, which the consumer can drop.

Back (capability `updates`): `poll_updates` takes at most `max_inbound_per_poll` messages from the
inbound queue with basic.get, hands each to the hub, and acknowledges it only after the hub has
stored the update. A malformed or refused message is dead-lettered with its reason, never
requeued, so it cannot come back in a loop.

Connections: the dispatcher builds one adapter per delivery and closes it afterwards. `close()`
therefore returns the connection and its channel to a small process-wide pool instead of closing
them, and the next adapter with the same connection settings takes them back: a dispatch batch
uses one connection per worker thread, not one per order. A pooled connection idle longer than
half its heartbeat interval is closed rather than reused (pika services heartbeats only while it
is being used, so the broker may already have dropped it).
"""
import json
import logging
import socket
import ssl
import string
import time
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions as pe

from integration.plugins import (
    CANCEL,
    REDACTED,
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
    hub_version,
    parse_update_message,
    register_secret,
)

log = logging.getLogger(__name__)

EVENTS = {SEND: "order.send", CANCEL: "order.cancel", STATUS: "order.status"}
EVENT_HEADER = "x-hub-event"
ACCOUNT_HEADER = "x-hub-account"
REASON_HEADER = "x-hub-rejected-reason"
REJECTED_FROM_HEADER = "x-hub-rejected-from"
ROUTING_PLACEHOLDERS = frozenset({"account", "action"})
DEFAULT_ROUTING_KEY = "vtex.order.{action}"
EXCERPT_LIMIT = 2000
POOL_LIMIT_PER_KEY = 8  # idle connections kept per settings; more are closed


def routing_key_problem(template):
    if len(template) > 255:
        return "A routing key has at most 255 characters."
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"Invalid routing key template: {exc}."
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in ROUTING_PLACEHOLDERS:
            return f"Unknown placeholder {{{field}}}; use {{account}} or {{action}}."
        if spec or conversion:
            return f"Placeholder {{{field}}} takes no format options."
    return None


def parse_url(url):
    """(scheme, host, port, vhost, user) from an amqp:// or amqps:// URL, or ValueError."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ValueError("Enter an amqp:// or amqps:// URL.")
    if not parts.hostname:
        raise ValueError("The URL has no host.")
    port = parts.port or (5671 if scheme == "amqps" else 5672)  # .port raises ValueError on junk
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise ValueError("The URL's path is the virtual host: use %2F for a '/' inside it.")
    vhost = unquote(path) or "/"
    if parts.query or parts.fragment:
        raise ValueError("Leave the query out of the URL: heartbeat and timeouts are settings of their own.")
    return scheme, parts.hostname, port, vhost, unquote(parts.username or "")


def _pooled_usable(item):
    connection, channel = item
    connection.process_data_events(time_limit=0)  # reads a close the broker may have sent
    return connection.is_open and channel.is_open


def _close_quietly(connection):
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # already broken: nothing more to release
        pass


POOL = ConnectionPool(close=lambda item: _close_quietly(item[0]), is_usable=_pooled_usable,
                      limit_per_key=POOL_LIMIT_PER_KEY)


class AmqpAdapter(Adapter):
    key = "amqp"
    label = "AMQP message queue (RabbitMQ)"
    actions = frozenset({SEND, CANCEL, STATUS})
    capabilities = frozenset({UPDATES})
    settings = (
        Setting("url", "Broker URL", required=True,
                help="amqp://user@host:5672/vhost or amqps://user@host:5671/vhost (TLS). The path is the "
                     "virtual host (%2F or nothing for '/'). Put the password in the Password field, not here."),
        Setting("password", "Password", secret=True, help="The broker user's password."),
        Setting("exchange", "Exchange", default="",
                help="The exchange orders are published to; it must exist. Empty: the default exchange, where "
                     "the routing key is a queue name."),
        Setting("routing_key", "Routing key", default=DEFAULT_ROUTING_KEY,
                help="Placeholders: {account} (the store), {action} (send, cancel, status)."),
        Setting("inbound_queue", "Inbound queue",
                help="The queue the ERP puts invoices, tracking and cancellations on (the hub's inbound body "
                     "format). Empty: nothing comes back through this binding."),
        Setting("dead_letter_exchange", "Dead-letter exchange", default="",
                help="Where a malformed or refused inbound message is republished, with the reason in the "
                     "header x-hub-rejected-reason. Empty: the message is rejected and the inbound queue's own "
                     "dead-letter exchange (if it has one) receives it; the reason is in the hub's log."),
        Setting("dead_letter_routing_key", "Dead-letter routing key", default="",
                help="Routing key for the dead-letter exchange; empty: the inbound queue's name."),
        Setting("max_inbound_per_poll", "Inbound messages per poll", type="int", default=100,
                help="At most this many inbound messages are taken per poll (1 to 10000)."),
        Setting("heartbeat", "Heartbeat (seconds)", type="int", default=30,
                help="AMQP heartbeat interval, 5 to 600 seconds."),
        Setting("timeout", "Timeout (seconds)", type="int", default=15,
                help="Connect, read and publish-confirm timeout, 1 to 300 seconds."),
        Setting("ca_file", "CA certificate file", type="path",
                help="amqps only: a PEM file of the CA that signed the broker's certificate, when it is not a "
                     "public one. The certificate and host name are always verified."),
    )

    @classmethod
    def check_settings(cls, cleaned):
        errors = {}
        url = cleaned.get("url")
        if url is not None:
            try:
                scheme, _host, _port, _vhost, user = parse_url(url)
            except ValueError as exc:
                errors["url"] = str(exc)
            else:
                if urlsplit(url).password is not None:
                    errors["url"] = "Remove the password from the URL (it would be shown in the admin); use the Password field."
                elif not user:
                    errors["url"] = "Put the user name in the URL: amqp://user@host/vhost."
                if cleaned.get("ca_file") and scheme != "amqps":
                    errors["ca_file"] = "A CA file is used with amqps:// only."
        problem = routing_key_problem(cleaned.get("routing_key", DEFAULT_ROUTING_KEY) or "")
        if problem:
            errors["routing_key"] = problem
        for name in ("exchange", "inbound_queue", "dead_letter_exchange", "dead_letter_routing_key"):
            value = cleaned.get(name) or ""
            if len(value) > 255 or any(ord(c) < 32 for c in value):
                errors[name] = "At most 255 characters, no control characters."
        for name, low, high in (("max_inbound_per_poll", 1, 10000), ("heartbeat", 5, 600), ("timeout", 1, 300)):
            value = cleaned.get(name)
            if value is not None and not low <= value <= high:
                errors[name] = f"Enter a number from {low} to {high}."
        if cleaned.get("dead_letter_exchange") is not None and cleaned.get("dead_letter_exchange") and not cleaned.get("inbound_queue"):
            errors["dead_letter_exchange"] = "Only used with an inbound queue."
        return errors

    def __init__(self, config):
        super().__init__(config)
        self.scheme, self.host, self.port, self.vhost, self.user = parse_url(config["url"])
        self.password = config.get("password") or ""
        register_secret(self.password)
        self.exchange = config.get("exchange") or ""
        self.routing_key = config.get("routing_key") or DEFAULT_ROUTING_KEY
        self.inbound_queue = config.get("inbound_queue") or ""
        self.dead_letter_exchange = config.get("dead_letter_exchange") or ""
        self.dead_letter_routing_key = config.get("dead_letter_routing_key") or self.inbound_queue
        self.max_inbound = config.get("max_inbound_per_poll") or 100
        self.heartbeat = config.get("heartbeat") or 30
        self.timeout = config.get("timeout") or 15
        self.ca_file = config.get("ca_file") or ""
        self.account = config.get("_account") or ""
        self._pool_key = (self.scheme, self.host, self.port, self.vhost, self.user, self.password,
                          self.heartbeat, self.timeout, self.ca_file)
        self._connection = None
        self._channel = None

    # --- connection -----------------------------------------------------------------------------
    def where(self):
        return f"{self.scheme}://{self.host}:{self.port} (virtual host {self.vhost!r})"

    def _parameters(self):
        ssl_options = None
        if self.scheme == "amqps":
            context = ssl.create_default_context(cafile=self.ca_file or None)
            ssl_options = pika.SSLOptions(context, server_hostname=self.host)
        return pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.user, self.password),
            heartbeat=self.heartbeat, blocked_connection_timeout=self.timeout,
            socket_timeout=self.timeout, stack_timeout=self.timeout + 5, connection_attempts=1,
            ssl_options=ssl_options,
            client_properties={"connection_name": f"vtex-order-hub {hub_version()} ({self.account or 'amqp adapter'})"},
        )

    def _open(self):
        """The channel (confirm mode) of a pooled or new connection; AdapterError when unreachable."""
        if self._channel is not None and self._channel.is_open and self._connection.is_open:
            return self._channel
        self._drop()
        taken = POOL.take(self._pool_key, max_idle=self.heartbeat / 2)
        if taken is not None:
            self._connection, self._channel = taken
            return self._channel
        try:
            connection = pika.BlockingConnection(self._parameters())
        except Exception as exc:
            raise self._connect_error(exc) from None
        try:
            channel = connection.channel()
            channel.confirm_delivery()
        except Exception as exc:
            _close_quietly(connection)
            raise TransientError(f"{self.where()}: could not open a channel: {self._describe(exc)}") from None
        self._connection, self._channel = connection, channel
        return channel

    def _drop(self):
        """Forget (and close) the current connection: after an error it is not trusted again."""
        if self._connection is not None:
            _close_quietly(self._connection)
        self._connection = self._channel = None

    def close(self):
        if self._connection is not None and self._channel is not None:
            POOL.give(self._pool_key, (self._connection, self._channel))
        self._connection = self._channel = None

    def _connect_error(self, exc):
        """Plain words for a failed connection attempt."""
        where = self.where()
        if isinstance(exc, socket.gaierror):
            return TransientError(f"the broker's host name {self.host!r} does not resolve (DNS: {exc.strerror or exc})")
        if isinstance(exc, pe.ProbableAuthenticationError):
            return PermanentError(f"{where} refused the login of user {self.user!r}: check the user name and password")
        if isinstance(exc, pe.ProbableAccessDeniedError):
            return PermanentError(
                f"{where}: user {self.user!r} may not use virtual host {self.vhost!r}, or it does not exist")
        text = self._describe(exc)
        if "ConnectionRefusedError" in text:
            return TransientError(f"{where} refused the connection: is the broker running and the port right?")
        if "SSL" in text or "certificate" in text.lower():
            return PermanentError(f"{where}: the TLS handshake failed: {text}")
        if "timed out" in text.lower() or "Timeout" in text:
            return TransientError(f"{where} did not answer within {self.timeout} s: {text}")
        return TransientError(f"could not connect to {where}: {text}")

    def _channel_error(self, exc, what):
        """Map an error on an open connection; the connection is dropped."""
        self._drop()
        if isinstance(exc, pe.ChannelClosedByBroker):
            code, text = exc.reply_code, exc.reply_text
            if code == 404:
                return PermanentError(f"{what}: {self.where()} says {text}: create it, or fix the setting")
            if code == 403:
                return PermanentError(f"{what}: {self.where()} refused access for user {self.user!r}: {text}")
            return TransientError(f"{what}: the broker closed the channel ({code} {text})")
        if isinstance(exc, pe.ConnectionBlockedTimeout):
            return TransientError(
                f"{what}: the broker blocked publishing for more than {self.timeout} s (memory or disk alarm)")
        if isinstance(exc, (pe.AMQPError, OSError)):
            return TransientError(f"{what}: the connection to {self.where()} was lost: {self._describe(exc)}")
        return TransientError(f"{what}: {self._describe(exc)}")

    def _describe(self, exc):
        # pika's connection errors carry their cause in args and have an empty str().
        detail = str(exc) or ", ".join(repr(a) for a in getattr(exc, "args", ()))
        text = " ".join(f"{type(exc).__name__}: {detail}".split())[:400]
        if self.password and len(self.password) >= 4:
            text = text.replace(self.password, REDACTED)
        return text

    # --- out ------------------------------------------------------------------------------------
    def send_order(self, order, raw, idempotency_key):
        return self._publish(SEND, order, raw, idempotency_key)

    def cancel_order(self, order, raw, idempotency_key):
        return self._publish(CANCEL, order, raw, idempotency_key)

    def status_changed(self, order, raw, state, idempotency_key):
        return self._publish(STATUS, order, raw, idempotency_key, state=state)

    def message_body(self, action, order, raw, idempotency_key, state=None):
        payload = {"event": EVENTS[action], "idempotency_key": idempotency_key, "account": self.account,
                   "timestamp": int(time.time())}
        if state is not None:
            payload["state"] = state
        payload["order"] = order.to_dict()
        payload["vtex_order"] = raw
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")

    def _publish(self, action, order, raw, idempotency_key, state=None):
        routing_key = self.routing_key.format(account=self.account, action=action)
        body = self.message_body(action, order, raw, idempotency_key, state)
        properties = pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", delivery_mode=pika.DeliveryMode.Persistent,
            message_id=idempotency_key, timestamp=int(time.time()), app_id="vtex-order-hub",
            type=EVENTS[action], headers={EVENT_HEADER: EVENTS[action], ACCOUNT_HEADER: self.account},
        )
        target = f"exchange {self.exchange or '(default)'!r} with routing key {routing_key!r}"
        request_excerpt = excerpt(
            f"publish to {self.where()} {target}\nmessage_id: {idempotency_key}\n{EVENT_HEADER}: {EVENTS[action]}\n\n"
            + body.decode("utf-8", "replace"), EXCERPT_LIMIT)
        try:
            channel = self._open()
            channel.basic_publish(self.exchange, routing_key, body, properties, mandatory=True)
        except pe.UnroutableError:
            raise TransientError(
                f"the broker could not route the message ({target}) to any queue: bind a queue to the exchange "
                "for this routing key", request_excerpt=request_excerpt) from None
        except pe.NackError:
            raise TransientError(f"the broker refused the message (nack) for {target}: it will be published again",
                                 request_excerpt=request_excerpt) from None
        except AdapterError as exc:
            exc.request_excerpt = request_excerpt
            raise
        except Exception as exc:
            raise self._error_with_excerpt(self._channel_error(exc, f"publishing to {target}"), request_excerpt) from None
        return Delivery(
            reference=idempotency_key, request_excerpt=request_excerpt,
            response_excerpt="confirmed by the broker (basic.ack, routed)",
            detail=f"published to {target} on {self.where()}, confirmed",
        )

    @staticmethod
    def _error_with_excerpt(error, request_excerpt):
        error.request_excerpt = request_excerpt
        return error

    # --- check ----------------------------------------------------------------------------------
    def check_connection(self):
        try:
            socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise self._connect_error(exc) from None
        self._drop()
        try:
            connection = pika.BlockingConnection(self._parameters())
        except Exception as exc:
            raise self._connect_error(exc) from None
        parts = [f"Connected to {self.where()} as {self.user!r}."]
        try:
            if self.exchange:
                self._passive(connection, "exchange", self.exchange)
                parts.append(f"Exchange {self.exchange!r} exists.")
            if self.inbound_queue:
                waiting = self._passive(connection, "queue", self.inbound_queue)
                parts.append(f"Inbound queue {self.inbound_queue!r} exists ({waiting} message(s) waiting).")
            if self.dead_letter_exchange:
                self._passive(connection, "exchange", self.dead_letter_exchange)
                parts.append(f"Dead-letter exchange {self.dead_letter_exchange!r} exists.")
        finally:
            _close_quietly(connection)
        return " ".join(parts)

    def _passive(self, connection, kind, name):
        channel = connection.channel()
        try:
            if kind == "exchange":
                channel.exchange_declare(name, passive=True)
                return None
            return channel.queue_declare(name, passive=True).method.message_count
        except pe.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                raise PermanentError(f"the {kind} {name!r} does not exist in virtual host {self.vhost!r}") from None
            if exc.reply_code == 403:
                raise PermanentError(f"user {self.user!r} may not use the {kind} {name!r}: {exc.reply_text}") from None
            raise TransientError(f"checking the {kind} {name!r}: {exc.reply_code} {exc.reply_text}") from None
        finally:
            if channel.is_open:
                channel.close()

    # --- back -----------------------------------------------------------------------------------
    def poll_updates(self, receive):
        """Take up to max_inbound_per_poll messages; ack each only after `receive` accepted it."""
        if not self.inbound_queue:
            return 0
        handled = 0
        while handled < self.max_inbound:
            try:
                channel = self._open()
                method, properties, body = channel.basic_get(self.inbound_queue, auto_ack=False)
            except AdapterError:
                raise
            except Exception as exc:
                raise self._channel_error(exc, f"reading the inbound queue {self.inbound_queue!r}") from None
            if method is None:
                break  # the queue is empty
            handled += 1
            self._handle_inbound(channel, method, properties, body, receive)
        return handled

    def _handle_inbound(self, channel, method, properties, body, receive):
        message_id = getattr(properties, "message_id", None) or f"delivery {method.delivery_tag}"
        source = f"amqp message {message_id}"[:200]
        try:
            update = parse_update_message(body, source=source)
        except PermanentError as exc:
            return self._dead_letter(channel, method, properties, body, str(exc))
        try:
            receipt = receive(update)
        except Exception:
            # The hub could not store it (database down...): back to the queue, and stop this
            # poll so that the same message is not taken again at once.
            self._settle(channel.basic_nack, delivery_tag=method.delivery_tag, requeue=True)
            raise
        if receipt.accepted:
            self._settle(channel.basic_ack, delivery_tag=method.delivery_tag)
        else:
            self._dead_letter(channel, method, properties, body,
                              f"{source}: refused by the hub: {receipt.error or receipt.status}")

    def _dead_letter(self, channel, method, properties, body, reason):
        """Never requeue: republish with the reason to the dead-letter exchange, else reject."""
        reason = excerpt(reason, 500)
        log.error("amqp inbound queue %s: dead-lettering %s", self.inbound_queue, reason)
        if self.dead_letter_exchange:
            headers = dict(getattr(properties, "headers", None) or {})
            headers[REASON_HEADER] = reason
            headers[REJECTED_FROM_HEADER] = self.inbound_queue
            copy = pika.BasicProperties(
                content_type=properties.content_type, content_encoding=properties.content_encoding,
                delivery_mode=pika.DeliveryMode.Persistent, message_id=properties.message_id,
                correlation_id=properties.correlation_id, timestamp=properties.timestamp,
                type=properties.type, app_id=properties.app_id, headers=headers,
            )
            try:
                channel.basic_publish(self.dead_letter_exchange, self.dead_letter_routing_key, body, copy, mandatory=True)
            except (pe.UnroutableError, pe.NackError) as exc:
                log.error("amqp: dead-letter exchange %s did not take the message (%s); rejecting it instead",
                          self.dead_letter_exchange, type(exc).__name__)
            except Exception as exc:
                # The original is still unacknowledged: the broker requeues it when the channel goes.
                raise self._channel_error(exc, f"dead-lettering to {self.dead_letter_exchange!r}") from None
            else:
                return self._settle(channel.basic_ack, delivery_tag=method.delivery_tag)
        # The queue's own dead-letter exchange (x-dead-letter-exchange), if it has one, gets it.
        self._settle(channel.basic_nack, delivery_tag=method.delivery_tag, requeue=False)

    def _settle(self, call, **kwargs):
        try:
            call(**kwargs)
        except Exception as exc:
            raise self._channel_error(exc, f"acknowledging on the inbound queue {self.inbound_queue!r}") from None
