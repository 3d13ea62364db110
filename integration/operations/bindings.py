"""What an operator can do to an adapter binding: check its connection, pause, resume, reset
its circuit breaker."""
import logging

from django.conf import settings
from django.utils import timezone

from integration.models import AdapterBinding, AlertKind, OrderSync, SyncStatus
from integration.operations.results import ERROR, SUCCESS, WARNING, Result
from integration.operations.stores import _go_out
from integration.redaction import redact

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def breaker_state(binding, now=None):
    """closed: calls go out; open: the ERP is not called until `breaker_open_until`;
    half-open: the open period is over and the next call is a probe that decides."""
    now = now or timezone.now()
    if binding.breaker_failures < settings.BREAKER_THRESHOLD:
        return CLOSED
    if binding.breaker_open_until is not None and binding.breaker_open_until > now:
        return OPEN
    return HALF_OPEN


def _binding_subject(binding):
    return f"{binding.account.name} → {binding.name or binding.adapter_key}"


def check_binding_connection(binding):
    from integration.plugins.contract import AdapterError

    subject = _binding_subject(binding)
    try:
        adapter = binding.build_adapter()
    except Exception as exc:
        return Result(subject, ERROR, f"cannot build the adapter: {type(exc).__name__}: {redact(str(exc))}")
    try:
        text = adapter.check_connection()
    except AdapterError as exc:
        kind = "permanent" if exc.permanent else "transient"
        return Result(subject, ERROR, f"connection check failed ({kind}): {exc}")
    except Exception as exc:  # an adapter bug must not break the admin
        return Result(subject, ERROR, f"connection check raised {type(exc).__name__}: {redact(str(exc))}")
    finally:
        try:
            adapter.close()
        except Exception:
            log.exception("closing adapter %s", binding.adapter_key)
    return Result(subject, SUCCESS, redact(str(text or "ok")))


def pause_binding(binding):
    subject = _binding_subject(binding)
    if not binding.enabled:
        return Result(subject, WARNING, "already paused.")
    AdapterBinding.objects.filter(pk=binding.pk).update(enabled=False)
    binding.enabled = False
    waiting = OrderSync.objects.filter(binding=binding, status=SyncStatus.PENDING).count()
    return Result(subject, SUCCESS, f"paused: its syncs are held until it is resumed ({waiting} pending now).")


def resume_binding(binding):
    from integration.queueing import enqueue_dispatch

    subject = _binding_subject(binding)
    if binding.enabled:
        return Result(subject, WARNING, "not paused.")
    AdapterBinding.objects.filter(pk=binding.pk).update(enabled=True)
    binding.enabled = True
    waiting = OrderSync.objects.filter(binding=binding, status=SyncStatus.PENDING).count()
    enqueue_dispatch(binding.account_id)
    return Result(subject, SUCCESS, f"resumed: {_go_out(waiting)}")


def reset_breaker(binding):
    """Close the circuit breaker by hand (the ERP is known to be back) and close its alert."""
    from integration.alerts import close_alert
    from integration.queueing import enqueue_dispatch

    subject = _binding_subject(binding)
    state = breaker_state(binding)
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=0, breaker_open_until=None)
    binding.breaker_failures, binding.breaker_open_until = 0, None
    close_alert(AlertKind.BREAKER_OPEN, f"binding-{binding.pk}", "The circuit breaker was reset by an operator.")
    enqueue_dispatch(binding.account_id)
    if state == CLOSED:
        return Result(subject, WARNING, "the circuit breaker was already closed; its failure count is back to 0.")
    return Result(subject, SUCCESS, f"circuit breaker reset (was {state}): calls go out again.")
