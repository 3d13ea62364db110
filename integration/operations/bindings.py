"""What an operator can do to an adapter binding: check its connection, pause, resume, reset
its circuit breaker."""
import logging

from integration import queueing
from integration.alerts import close_alert
from integration.models import AdapterBinding, AlertKind, OrderSync, SyncStatus
from integration.operations.results import ERROR, SUCCESS, WARNING, Result, pending_go_out
from integration.pipeline import breaker
from integration.pipeline.breaker import CLOSED, HALF_OPEN, OPEN, state as breaker_state  # noqa: F401  (for the admin)
from integration.plugins.contract import AdapterError
from integration.redaction import redact

log = logging.getLogger(__name__)

def _binding_subject(binding):
    return f"{binding.account.name} → {binding.name or binding.adapter_key}"


def check_binding_connection(binding):
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
    subject = _binding_subject(binding)
    if binding.enabled:
        return Result(subject, WARNING, "not paused.")
    AdapterBinding.objects.filter(pk=binding.pk).update(enabled=True)
    binding.enabled = True
    waiting = OrderSync.objects.filter(binding=binding, status=SyncStatus.PENDING).count()
    queueing.enqueue_dispatch(binding.account_id)
    return Result(subject, SUCCESS, f"resumed: {pending_go_out(waiting)}")


def reset_breaker(binding):
    """Close the circuit breaker by hand (the ERP is known to be back) and close its alert."""
    subject = _binding_subject(binding)
    state = breaker.reset(binding)
    close_alert(AlertKind.BREAKER_OPEN, f"binding-{binding.pk}", "The circuit breaker was reset by an operator.")
    queueing.enqueue_dispatch(binding.account_id)
    if state == CLOSED:
        return Result(subject, WARNING, "the circuit breaker was already closed; its failure count is back to 0.")
    return Result(subject, SUCCESS, f"circuit breaker reset (was {state}): calls go out again.")
