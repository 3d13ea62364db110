"""Leases and claims with expiry from database time, taken by conditional updates."""
import os
import socket
import uuid
from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import Now


def new_owner_id(prefix="w"):
    return f"{prefix}-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def take_lease(queryset, owner, ttl, *, owner_field="lease_owner", until_field="lease_until"):
    """Claim every row of `queryset` whose lease is free or expired; returns how many."""
    free = Q(**{f"{until_field}__isnull": True}) | Q(**{f"{until_field}__lt": Now()})
    return queryset.filter(free).update(**{owner_field: owner, until_field: Now() + timedelta(seconds=ttl)})


def renew_lease(queryset, owner, ttl, *, owner_field="lease_owner", until_field="lease_until"):
    """Only the owner renews; False means the lease was lost (expired and taken by another)."""
    return queryset.filter(**{owner_field: owner}).update(**{until_field: Now() + timedelta(seconds=ttl)}) > 0


def release_lease(queryset, owner, *, owner_field="lease_owner", until_field="lease_until"):
    queryset.filter(**{owner_field: owner}).update(**{owner_field: "", until_field: None})


def clear_expired(queryset, *, owner_field="lease_owner", until_field="lease_until"):
    """Forget leases whose holder died without releasing them (killed, or its database went
    away). An expired lease is already free for the next taker; clearing it also frees rows that
    nobody will take again (an order whose work was done before its worker died) and keeps the
    admin from naming a dead worker as the holder. Returns how many were cleared."""
    return queryset.exclude(**{owner_field: ""}).filter(**{f"{until_field}__lt": Now()}).update(
        **{owner_field: "", until_field: None})
