"""What the observer hooks hand to plugins: plain, frozen values, never the hub's database rows.

A plugin can keep, log or send them anywhere; changing one changes nothing in the hub. Each is
built by the hub from its own records with `of(...)`, which reads attributes only.
"""
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StoreInfo:
    """A VTEX store the hub serves."""

    id: int
    account_name: str   # the VTEX account name
    name: str           # the operator's name for it

    @classmethod
    def of(cls, account):
        return cls(id=account.pk, account_name=account.account_name, name=account.name)


@dataclass(frozen=True)
class SyncInfo:
    """One order's delivery (`action`: send, cancel or status) to one adapter binding."""

    id: int
    store: StoreInfo
    order_id: str
    action: str
    state: str            # the OMS state, for status actions
    status: str           # succeeded, failed, …
    attempts: int
    binding_id: int
    binding: str          # the binding's name (or its adapter key)
    adapter_key: str
    erp_reference: str    # what the adapter returned as its reference, when it succeeded
    last_error: str       # redacted
    idempotency_key: str
    finished_at: datetime | None

    @classmethod
    def of(cls, sync):
        binding, order = sync.binding, sync.order
        return cls(
            id=sync.pk, store=StoreInfo.of(order.account), order_id=order.order_id, action=sync.action,
            state=sync.state, status=sync.status, attempts=sync.attempts, binding_id=binding.pk,
            binding=binding.name or binding.adapter_key, adapter_key=binding.adapter_key,
            erp_reference=sync.erp_reference, last_error=sync.last_error, idempotency_key=sync.idempotency_key,
            finished_at=sync.finished_at,
        )


@dataclass(frozen=True)
class AlertInfo:
    """One alert episode: opened once, recovered once."""

    kind: str             # e.g. "breaker_open"
    kind_label: str       # e.g. "Circuit breaker open"
    subject: str          # what it is about: a store or a binding
    store: StoreInfo | None
    message: str
    recovery_message: str
    opened_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, alert):
        return cls(
            kind=str(alert.kind), kind_label=alert.get_kind_display(), subject=alert.subject,
            store=StoreInfo.of(alert.account) if alert.account_id else None, message=alert.message,
            recovery_message=alert.recovery_message, opened_at=alert.opened_at, resolved_at=alert.resolved_at,
        )
