"""A circuit breaker per adapter binding.

When an ERP fails every call, stop calling it for a while and hold its syncs (they keep their
attempts) instead of burning each sync's retries; then let one probe through and close the
breaker when it answers. State lives on the binding row, changed by conditional updates, so
every worker on every machine sees the same breaker.
"""
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from integration.models import AdapterBinding, OrderSync, SyncStatus

# What a sync postponed by an open breaker says: on closing, the breaker makes those syncs due again.
POSTPONED = "The adapter's circuit breaker is open after repeated failures; waiting for it to close."

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def state(binding, now=None):
    """closed: calls go out; open: the ERP is not called until `breaker_open_until`;
    half-open: the open period is over and the next call is a probe that decides."""
    now = now or timezone.now()
    if binding.breaker_failures < settings.BREAKER_THRESHOLD:
        return CLOSED
    if binding.breaker_open_until is not None and binding.breaker_open_until > now:
        return OPEN
    return HALF_OPEN


def seconds_to_wait(binding):
    """0 when a call may go out now; otherwise how long this sync should wait.

    A half-open breaker (failures over the threshold, open period over) lets exactly one caller
    through: the one whose conditional update takes the probe.
    """
    row = AdapterBinding.objects.filter(pk=binding.pk).values("breaker_failures", "breaker_open_until").first()
    if row is None or row["breaker_failures"] < settings.BREAKER_THRESHOLD:
        return 0
    if row["breaker_open_until"] and row["breaker_open_until"] > timezone.now():
        return max(1, int((row["breaker_open_until"] - timezone.now()).total_seconds()))
    probe = AdapterBinding.objects.filter(Q(breaker_open_until__isnull=True) | Q(breaker_open_until__lte=Now()), pk=binding.pk)
    if probe.update(breaker_open_until=Now() + timedelta(seconds=settings.BREAKER_OPEN_SECONDS)):
        return 0
    return settings.BREAKER_OPEN_SECONDS


def record_failure(binding):
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=F("breaker_failures") + 1)
    AdapterBinding.objects.filter(pk=binding.pk, breaker_failures__gte=settings.BREAKER_THRESHOLD).update(
        breaker_open_until=Now() + timedelta(seconds=settings.BREAKER_OPEN_SECONDS))


def record_success(binding):
    """The ERP answered: close the breaker, and make the syncs it postponed due now, not when
    their postponement ends."""
    if AdapterBinding.objects.filter(pk=binding.pk).exclude(breaker_failures=0, breaker_open_until__isnull=True).update(
            breaker_failures=0, breaker_open_until=None):
        OrderSync.objects.filter(binding_id=binding.pk, status=SyncStatus.PENDING, last_error=POSTPONED,
                                 next_attempt_at__gt=Now()).update(next_attempt_at=Now())


def probe_now(binding_ids):
    """An operator retried syncs of these bindings: an open breaker becomes half-open, so the
    next call goes out now as its probe (a failure opens it again, a success closes it).
    Returns how many breakers were open."""
    return AdapterBinding.objects.filter(pk__in=list(binding_ids), breaker_failures__gte=settings.BREAKER_THRESHOLD,
                                         breaker_open_until__gt=Now()).update(breaker_open_until=Now())


def is_open(binding, now=None):
    return state(binding, now) == OPEN


def reset(binding):
    """Close the breaker by hand (the ERP is known to be back); returns the state it was in."""
    was = state(binding)
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=0, breaker_open_until=None)
    binding.breaker_failures, binding.breaker_open_until = 0, None
    return was
