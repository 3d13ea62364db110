"""A circuit breaker per adapter binding.

When an ERP fails every call, stop calling it for a while and hold its syncs (they keep their
attempts) instead of burning each sync's retries; then let one probe through and close the
breaker when it answers. State lives on the binding row, changed by conditional updates, so
every worker on every machine sees the same breaker.
"""
import threading
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


def record_failure(binding, count=1):
    """`count` more transient failures (consecutive: no success among them)."""
    _record_failures(binding.pk, F("breaker_failures") + count)


def _record_failures(binding_pk, failures):
    AdapterBinding.objects.filter(pk=binding_pk).update(breaker_failures=failures)
    AdapterBinding.objects.filter(pk=binding_pk, breaker_failures__gte=settings.BREAKER_THRESHOLD).update(
        breaker_open_until=Now() + timedelta(seconds=settings.BREAKER_OPEN_SECONDS))


def record_success(binding):
    """The ERP answered: close the breaker, and make the syncs it postponed due now, not when
    their postponement ends."""
    _record_success(binding.pk)


def _record_success(binding_pk):
    if AdapterBinding.objects.filter(pk=binding_pk).exclude(breaker_failures=0, breaker_open_until__isnull=True).update(
            breaker_failures=0, breaker_open_until=None):
        OrderSync.objects.filter(binding_id=binding_pk, status=SyncStatus.PENDING, last_error=POSTPONED,
                                 next_attempt_at__gt=Now()).update(next_attempt_at=Now())


class LotGate:
    """The breakers of a dispatch lot's bindings, kept in memory while the lot's calls go out.

    Read once for the lot (one query), checked before each call and counted after it without a
    statement, and written once per binding when the lot is done (`save`). Within the lot it
    behaves as the per-call breaker did: once a binding's consecutive failures reach the
    threshold, its remaining calls are postponed; a half-open breaker lets exactly one probe out
    (taken by a conditional update, so one worker of all gets it), and a probe that succeeds lets
    the rest of the lot through. Other workers see the counts when the lot is written.
    """

    def __init__(self, rows, probes):
        self._lock = threading.Lock()
        self._failures = {pk: failures for pk, (failures, _) in rows.items()}
        self._open_until = {pk: open_until for pk, (_, open_until) in rows.items()}
        self._probes = set(probes)  # bindings whose half-open probe this lot holds, not yet used
        self._added = {}  # binding pk -> transient failures since its last success in this lot
        self._succeeded = set()

    @classmethod
    def for_bindings(cls, binding_ids):
        rows = {pk: (failures, open_until) for pk, failures, open_until in AdapterBinding.objects.filter(
            pk__in=list(binding_ids)).values_list("pk", "breaker_failures", "breaker_open_until")}
        now, probes = timezone.now(), []
        for pk, (failures, open_until) in rows.items():
            if failures >= settings.BREAKER_THRESHOLD and (open_until is None or open_until <= now):
                # Half-open: one caller of all takes the probe; the breaker is open again meanwhile.
                probe = AdapterBinding.objects.filter(Q(breaker_open_until__isnull=True) | Q(breaker_open_until__lte=Now()), pk=pk)
                if probe.update(breaker_open_until=Now() + timedelta(seconds=settings.BREAKER_OPEN_SECONDS)):
                    probes.append(pk)
        return cls(rows, probes)

    def admit(self, binding_pk):
        """May this call go out now? (A probe is used by the first caller it admits.)"""
        with self._lock:
            if self._failures.get(binding_pk, 0) < settings.BREAKER_THRESHOLD:
                return True
            if binding_pk in self._probes:
                self._probes.discard(binding_pk)
                return True
            return False

    def wait_seconds(self, binding_pk):
        open_until = self._open_until.get(binding_pk)
        if open_until is not None and open_until > timezone.now():
            return max(1, int((open_until - timezone.now()).total_seconds()))
        return settings.BREAKER_OPEN_SECONDS

    def record(self, binding_pk, *, ok, counts=True):
        """A call's answer: `ok` closes the breaker; a failure that `counts` (transient) adds one."""
        with self._lock:
            if ok:
                self._failures[binding_pk] = 0
                self._added[binding_pk] = 0
                self._succeeded.add(binding_pk)
            elif counts:
                self._failures[binding_pk] = self._failures.get(binding_pk, 0) + 1
                self._added[binding_pk] = self._added.get(binding_pk, 0) + 1

    def save(self):
        """Write the lot's counts: at most two statements per binding that was called."""
        for pk in set(self._added) | self._succeeded:
            trailing = self._added.get(pk, 0)
            if pk in self._succeeded:
                if trailing:
                    _record_failures(pk, trailing)  # the failures after the lot's last success
                else:
                    _record_success(pk)
            elif trailing:
                _record_failures(pk, F("breaker_failures") + trailing)


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
