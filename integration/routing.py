"""Routing: a new inbox event, matched against its store's rules, becomes OrderSyncs."""
from collections import defaultdict

from django.db.models.functions import Now

from integration.models import FeedEvent, Order, OrderSync, RuleAction
from integration.vtex.statuses import CANCELED_STATES


def route_events(account, events):
    """Create the syncs the store's rules ask for. Runs inside the storing transaction."""
    if not events:
        return 0
    rules = defaultdict(set)
    for state, action in account.rules.values_list("state", "action"):
        rules[state].add(action)
    bindings = [b for b in account.bindings.filter(enabled=True)]
    created = 0
    # A cancellation first: a send must never be routed for an order known to be canceled,
    # even when the two events come in one batch in the wrong order.
    for event in sorted(events, key=lambda e: (e.state not in CANCELED_STATES, e.current_change or e.last_change)):
        actions = rules.get(event.state, set())
        if not actions and event.state not in CANCELED_STATES:
            continue
        order, _ = Order.objects.get_or_create(account=account, order_id=event.order_id)
        if event.state in CANCELED_STATES and not order.canceled:
            Order.objects.filter(pk=order.pk).update(canceled=True)
            order.canceled = True
        new_syncs = []
        if RuleAction.SEND in actions and not order.canceled:
            new_syncs += [OrderSync(order=order, binding=b, action=RuleAction.SEND, next_attempt_at=Now()) for b in bindings if b.takes(RuleAction.SEND)]
        if RuleAction.CANCEL in actions:
            sent_to = set(order.syncs.filter(action=RuleAction.SEND).values_list("binding_id", flat=True))
            new_syncs += [
                OrderSync(order=order, binding=b, action=RuleAction.CANCEL, next_attempt_at=Now())
                for b in bindings if b.pk in sent_to and b.takes(RuleAction.CANCEL)
            ]
        if RuleAction.STATUS in actions:
            new_syncs += [
                OrderSync(order=order, binding=b, action=RuleAction.STATUS, state=event.state, next_attempt_at=Now())
                for b in bindings if b.takes(RuleAction.STATUS)
            ]
        if new_syncs:
            # The unique (order, action, binding, state) constraint makes a duplicate create nothing.
            OrderSync.objects.bulk_create(new_syncs, ignore_conflicts=True)
            created += len(new_syncs)
    FeedEvent.objects.filter(pk__in=[e.pk for e in events]).update(routed_at=Now())
    return created


def sweep_unrouted(limit=500):
    """Route events stored but never routed (an older version, or a crash between steps)."""
    from django.db import transaction

    from integration.models import Account

    done = 0
    for account in Account.objects.filter(events__routed_at__isnull=True).distinct():
        with transaction.atomic():
            events = list(FeedEvent.objects.filter(account=account, routed_at__isnull=True).order_by("id")[:limit])
            route_events(account, events)
            done += len(events)
    return done
